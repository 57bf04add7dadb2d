namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>What the reader found in one family's ruleset.</summary>
public sealed class OwnedState
{
    public required IpFamily Family { get; init; }

    public required IReadOnlyList<PortForward> Forwards { get; init; }

    /// <summary>The rules each forward was rebuilt from, by name: what removing it deletes.</summary>
    public IReadOnlyDictionary<string, List<OwnedRule>> RulesOf { get; init; } = new Dictionary<string, List<OwnedRule>>();

    /// <summary>
    /// The FORWARD accepts the nftables backend wrote for its forwards (tag role <see cref="RuleLayout.MirrorRole"/>),
    /// by name: not forwards of this backend, never listed as such, kept when its forwards change.
    /// </summary>
    public IReadOnlyDictionary<string, List<OwnedRule>> MirrorsOf { get; init; } = new Dictionary<string, List<OwnedRule>>();

    /// <summary>Names in <see cref="MirrorsOf"/> whose rule no packet reaches (a jump to its chain is gone).</summary>
    public IReadOnlySet<string> UnreachableMirrors { get; init; } = new HashSet<string>();

    /// <summary>Rules in PSNF- chains that carry no module tag (someone added them by hand); kept, never deleted.</summary>
    public required IReadOnlyList<RuleLine> UntaggedRules { get; init; }

    /// <summary>Tagged rules that could not be read back (hand-edited); reported, left alone.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
}
