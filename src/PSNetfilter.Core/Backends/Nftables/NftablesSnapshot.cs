namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>The table as read (<see cref="NftTableState"/>: every part with its key or handle) and the forwards rebuilt from it.</summary>
public sealed class NftablesSnapshot : BackendSnapshot
{
    public NftablesSnapshot(NftTableState state, IReadOnlyList<PortForward> forwards)
    {
        State = state;
        ForwardList = forwards;
    }

    public NftTableState State { get; }

    public IReadOnlyList<PortForward> ForwardList { get; }

    /// <summary>
    /// iptables' filter table of each family that holds forwards and has a FORWARD chain: whether it drops, and
    /// which forwards have their accept there (<see cref="IptablesForwardMirror"/>).
    /// </summary>
    internal IReadOnlyDictionary<IpFamily, IptablesForwardMirror.Facts> Iptables { get; init; } = new Dictionary<IpFamily, IptablesForwardMirror.Facts>();

    public override IEnumerable<PortForward> Forwards => ForwardList;
}
