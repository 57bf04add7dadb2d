namespace PSNetfilter.Core.NftJson;

/// <summary>A table as <c>nft -j list ruleset</c> shows it: family (ip, ip6, inet, arp, bridge, netdev) and name.</summary>
public sealed record NftTable(string Family, string Name, long Handle)
{
    /// <summary>"inet filter": how nft itself names a table on its command line.</summary>
    public string Display => Family + " " + Name;
}
