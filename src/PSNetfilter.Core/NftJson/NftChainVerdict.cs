namespace PSNetfilter.Core.NftJson;

/// <summary>
/// The verdict of one base chain for one packet. <see cref="Certain"/> is false when a rule before the verdict
/// depends on something not known in advance (the client's address, an interface): it may accept the packet
/// first, or not. <see cref="Rule"/> is null when the chain's policy decided.
/// </summary>
public sealed record NftChainVerdict(NftChain BaseChain, NftOutcome Outcome, bool Certain, NftChain DecidingChain, NftRule? Rule, bool Reject)
{
    /// <summary>The conditions that made the verdict uncertain, rendered ("ip saddr 10.0.0.0/8 accept").</summary>
    public IReadOnlyList<string> Depends { get; init; } = Array.Empty<string>();
}
