using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Engine;

namespace PSNetfilter.Tests.Support;

/// <summary>
/// A backend double for engine tests: forwards live in a list, a change applies its accepted changes to that
/// list at the commit, and <see cref="Refuse"/> names forwards whose add it refuses the way a kernel would
/// (reported to the observer, left out, the rest applied).
/// </summary>
internal sealed class FakeBackend(string name = "fake") : INetfilterBackend
{
    public List<PortForwardDefinition> Live { get; } = new();

    /// <summary>The forwards as this backend reads them back (its name in their Backend).</summary>
    private IReadOnlyList<PortForward> Read() => Live.Select(d => new PortForward(d) { Backend = name }).ToList();

    /// <summary>Names whose add the commit refuses.</summary>
    public HashSet<string> Refuse { get; } = new(StringComparer.Ordinal);

    /// <summary>Every commit's changes, in order.</summary>
    public List<IReadOnlyList<PendingChange>> Commits { get; } = new();

    /// <summary>Changes opened and disposed (a disposed change applies nothing it did not commit).</summary>
    public int Opened { get; private set; }

    public int Disposed { get; private set; }

    public List<PendingChange> Accepted { get; } = new();

    public string Name => name;

    /// <summary>Every backend's commits, in the order they happened (shared by the backends of one test).</summary>
    public List<string>? CommitLog { get; init; }

    public int StreamFromForwards => 5;

    public string StreamTarget => "the fake kernel";

    public Task<BackendSnapshot> ReadAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct) =>
        Task.FromResult<BackendSnapshot>(Snapshot());

    public Task<bool> CanStreamAsync(CancellationToken ct) => Task.FromResult(true);

    public Task<IBackendChange> OpenChangeAsync(IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, ReadOptions options, CancellationToken ct)
    {
        Opened++;
        return Task.FromResult<IBackendChange>(new Change(this, Snapshot()));
    }

    public Task<IReadOnlyList<PortForwardFinding>> CheckAsync(BackendSnapshot snapshot, IReadOnlyList<PortForward> forwards, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<PortForwardFinding>>(forwards.Select(f => new PortForwardFinding(f.Name, FindingSeverity.Info, "FakeCheck", "seen", "by the fake", "none")).ToList());

    private Snap Snapshot() => new(Read());

    private sealed class Snap(IReadOnlyList<PortForward> forwards) : BackendSnapshot
    {
        public override IEnumerable<PortForward> Forwards => forwards;
    }

    private sealed class Change(FakeBackend backend, BackendSnapshot snapshot) : IBackendChange
    {
        public BackendSnapshot Snapshot { get; } = snapshot;

        public void Accept(PendingChange change) => backend.Accepted.Add(change);

        public void Flush()
        {
        }

        public Task<CommitOutcome> CommitAsync(IReadOnlyList<PendingChange> pending, IChangeObserver observer, CancellationToken ct)
        {
            var applied = new List<PendingChange>();
            foreach (var p in pending)
            {
                if (p.New is { } add && backend.Refuse.Contains(add.Name))
                {
                    observer.Failed(new NetfilterException("FakeRefused", FailureKind.OperationFailed, $"refused {add.Name}", add.Name));
                    continue;
                }

                if (p.Old is { } old)
                {
                    backend.Live.RemoveAll(d => d.Name == old.Name);
                }

                if (p.New is { } n)
                {
                    backend.Live.Add(n);
                }

                applied.Add(p);
            }

            backend.Commits.Add(pending.ToList());
            backend.CommitLog?.Add($"{backend.Name}: {string.Join(", ", pending.Select(p => (p.New is null ? "-" : "+") + (p.New?.Name ?? p.Old!.Name)))}");
            return Task.FromResult(new CommitOutcome(applied, applied.Count > 0));
        }

        public void Dispose() => backend.Disposed++;
    }
}
