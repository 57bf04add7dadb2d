namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>Both families' rulesets (one iptables-save each) and the forwards rebuilt from them.</summary>
public sealed class IptablesSnapshot : BackendSnapshot
{
    public required IReadOnlyDictionary<IpFamily, Ruleset> Rulesets { get; init; }

    public required IReadOnlyDictionary<IpFamily, OwnedState> States { get; init; }

    public override IEnumerable<PortForward> Forwards => States.Values.SelectMany(s => s.Forwards);
}
