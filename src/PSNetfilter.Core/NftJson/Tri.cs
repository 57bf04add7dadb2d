namespace PSNetfilter.Core.NftJson;

/// <summary>Three-valued logic for matches on partly known packets.</summary>
public enum Tri
{
    False,
    True,
    Unknown,
}
