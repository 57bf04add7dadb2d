using PSNetfilter.Core.Backends;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// A change in progress: holds the namespace lock, the backend's change (and the snapshot it was planned on),
/// and what the engine decided so far.
/// </summary>
public sealed class ChangeSession : IDisposable
{
    private readonly IDisposable _lock;

    internal ChangeSession(IDisposable gate, IBackendChange change)
    {
        _lock = gate;
        Change = change;
    }

    /// <summary>The backend's side of the change.</summary>
    public IBackendChange Change { get; }

    public BackendSnapshot Snapshot => Change.Snapshot;

    public List<PendingChange> Pending { get; } = new();

    /// <summary>Recorded forwards with no rules left in the kernel that a removal drops from the record.</summary>
    public List<PortForward> Forgotten { get; } = new();

    internal Dictionary<string, PortForwardDefinition> Batch { get; } = new(PortForwardNames.Comparer);

    /// <summary>The snapshot's forwards by name, for <see cref="PortForwardManager.PlanAdds"/>.</summary>
    internal Dictionary<string, List<PortForward>>? ByName { get; set; }

    /// <summary>The external endpoints of the snapshot and of the forwards accepted so far.</summary>
    internal EndpointIndex? Endpoints { get; set; }

    internal List<ChangeResult> Unchanged { get; } = new();

    /// <summary>Forwarding sysctls read while the rulesets were read (null: not read or failed).</summary>
    internal IReadOnlyDictionary<IpFamily, Task<bool?>> Forwarding { get; init; } = new Dictionary<IpFamily, Task<bool?>>();

    /// <summary>Records an accepted change; a streamed change plans it now.</summary>
    internal void Accept(PendingChange change)
    {
        Pending.Add(change);
        Change.Accept(change);
    }

    /// <summary>Hands what a streamed change planned so far to the backend.</summary>
    internal void WriteStream() => Change.Flush();

    /// <summary>Abandons what the backend did not commit, then releases the lock.</summary>
    public void Dispose()
    {
        try
        {
            Change.Dispose();
        }
        finally
        {
            _lock.Dispose();
        }
    }
}
