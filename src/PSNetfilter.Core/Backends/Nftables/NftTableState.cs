namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>What <see cref="NftTableReader"/> found in the table.</summary>
/// <param name="Exists">The table is there at all.</param>
/// <param name="DispatchTags">Comments of the fixed dispatch rules present (psnf:v1:@dnat4, ...).</param>
public sealed record NftTableState(bool Exists, IReadOnlyList<NftTableForward> Forwards, IReadOnlySet<string> DispatchTags)
{
    public static NftTableState Empty { get; } = new(false, Array.Empty<NftTableForward>(), new HashSet<string>());
}
