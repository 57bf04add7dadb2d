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

    public override IEnumerable<PortForward> Forwards => ForwardList;
}
