using PSNetfilter.Core.Engine;

namespace PSNetfilter.Core.Backends;

/// <summary>
/// One change in progress in one backend: the snapshot it plans against, the changes the engine accepted, and
/// whatever the backend started for it (processes waiting for their input). Disposing it abandons what was not
/// committed: nothing of it is applied.
/// </summary>
public interface IBackendChange : IDisposable
{
    BackendSnapshot Snapshot { get; }

    /// <summary>An accepted change; a streamed change plans it at once.</summary>
    void Accept(PendingChange change);

    /// <summary>Hands what was planned since the last call to the kernel side (a streamed change), without applying it.</summary>
    void Flush();

    /// <summary>
    /// Applies <paramref name="pending"/>. A forward the kernel refuses is reported to the observer and left out;
    /// the rest is applied. Returns what was applied (for a replace or removal whose forward another process
    /// removed meanwhile, the change without its old forward) and whether anything reached the kernel.
    /// </summary>
    Task<CommitOutcome> CommitAsync(IReadOnlyList<PendingChange> pending, IChangeObserver observer, CancellationToken ct);
}
