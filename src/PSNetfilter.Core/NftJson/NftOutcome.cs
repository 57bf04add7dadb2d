namespace PSNetfilter.Core.NftJson;

/// <summary>What a base chain does with a packet.</summary>
public enum NftOutcome
{
    Accept,
    Drop,
}
