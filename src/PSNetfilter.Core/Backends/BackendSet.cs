using PSNetfilter.Core.Diagnostics;

namespace PSNetfilter.Core.Backends;

/// <summary>
/// Several backends of one namespace as one: a namespace may hold forwards of the iptables and of the nftables
/// backend (during a migration, or when both were used), and Get, Test and Remove see them all. Reads are the
/// union of every backend's forwards (each reads only what is its own); a removal goes to the backend that holds the
/// forward; an add goes to the backend the change names (<see cref="Engine.PendingChange.Backend"/>), or to
/// <see cref="Preferred"/>. A replace whose new forward goes to another backend than the old one is a move: the
/// add is committed first, in the target backend, and the old forward removed after it, so the forward carries
/// traffic throughout.
/// </summary>
public sealed class BackendSet : INetfilterBackend
{
    public BackendSet(INetfilterBackend preferred, IEnumerable<INetfilterBackend> others)
    {
        Preferred = preferred;
        All = new[] { preferred }.Concat(others.Where(o => o.Name != preferred.Name)).ToList();
    }

    /// <summary>Where new forwards go unless a change names another backend.</summary>
    public INetfilterBackend Preferred { get; }

    /// <summary>Every backend of the set, the preferred one first.</summary>
    public IReadOnlyList<INetfilterBackend> All { get; }

    public string Name => Preferred.Name;

    public int StreamFromForwards => Preferred.StreamFromForwards;

    public string StreamTarget => Preferred.StreamTarget;

    public Task<bool> CanStreamAsync(CancellationToken ct) => Preferred.CanStreamAsync(ct);

    public async Task<BackendSnapshot> ReadAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct)
    {
        var parts = await Task.WhenAll(All.Select(b => b == Preferred ? b.ReadAsync(needed, options, ct) : ReadOtherAsync(b, options, ct))).ConfigureAwait(false);
        return new SetSnapshot(All.Zip(parts).ToDictionary(x => x.First.Name, x => x.Second));
    }

    /// <summary>
    /// Another backend's forwards, read only where it keeps state (no family is "needed" from it); a backend whose
    /// tools are not installed holds nothing.
    /// </summary>
    private static async Task<BackendSnapshot> ReadOtherAsync(INetfilterBackend backend, ReadOptions options, CancellationToken ct)
    {
        try
        {
            return await backend.ReadAsync(Array.Empty<IpFamily>(), options, ct).ConfigureAwait(false);
        }
        catch (NetfilterException ex) when (ex.ErrorId == "ToolNotInstalled")
        {
            return new SetSnapshot(new Dictionary<string, BackendSnapshot>());
        }
    }

    public async Task<IBackendChange> OpenChangeAsync(IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, ReadOptions options, CancellationToken ct)
    {
        var opened = new List<(INetfilterBackend Backend, Task<IBackendChange> Change)>();
        foreach (var b in All)
        {
            opened.Add((b, b == Preferred ? b.OpenChangeAsync(adding, stream, options, ct) : OpenOtherAsync(b, options, ct)));
        }

        try
        {
            await Task.WhenAll(opened.Select(o => o.Change)).ConfigureAwait(false);
        }
        catch
        {
            foreach (var o in opened.Where(o => o.Change.IsCompletedSuccessfully))
            {
                o.Change.Result.Dispose();
            }

            throw;
        }

        return new SetChange(this, opened.ToDictionary(o => o.Backend.Name, o => o.Change.Result));
    }

    /// <summary>A change of another backend: it only removes (moves away, removals), and holds nothing when its tools are not installed.</summary>
    private static async Task<IBackendChange> OpenOtherAsync(INetfilterBackend backend, ReadOptions options, CancellationToken ct)
    {
        try
        {
            return await backend.OpenChangeAsync(Array.Empty<PortForwardDefinition>(), false, options, ct).ConfigureAwait(false);
        }
        catch (NetfilterException ex) when (ex.ErrorId == "ToolNotInstalled")
        {
            return new EmptyChange();
        }
    }

    public async Task<IReadOnlyList<PortForwardFinding>> CheckAsync(BackendSnapshot snapshot, IReadOnlyList<PortForward> forwards, CancellationToken ct)
    {
        var set = (SetSnapshot)snapshot;
        var findings = new List<PortForwardFinding>();
        foreach (var b in All)
        {
            var own = forwards.Where(f => f.Backend == b.Name).ToList();
            if (own.Count > 0)
            {
                findings.AddRange(await b.CheckAsync(set.Parts[b.Name], own, ct).ConfigureAwait(false));
            }
        }

        return findings;
    }

    /// <summary>The backend a change's new forward goes to.</summary>
    internal string TargetOf(Engine.PendingChange change) => change.Backend ?? Preferred.Name;

    /// <summary>The change of a backend that cannot hold forwards here: nothing to read, nothing to apply.</summary>
    private sealed class EmptyChange : IBackendChange
    {
        public BackendSnapshot Snapshot { get; } = new SetSnapshot(new Dictionary<string, BackendSnapshot>());

        public void Accept(Engine.PendingChange change)
        {
        }

        public void Flush()
        {
        }

        public Task<CommitOutcome> CommitAsync(IReadOnlyList<Engine.PendingChange> pending, Engine.IChangeObserver observer, CancellationToken ct) =>
            Task.FromResult(new CommitOutcome(Array.Empty<Engine.PendingChange>(), false));

        public void Dispose()
        {
        }
    }

    private sealed class SetSnapshot(IReadOnlyDictionary<string, BackendSnapshot> parts) : BackendSnapshot
    {
        public IReadOnlyDictionary<string, BackendSnapshot> Parts { get; } = parts;

        public override IEnumerable<PortForward> Forwards => Parts.Values.SelectMany(p => p.Forwards);
    }

    private sealed class SetChange(BackendSet set, IReadOnlyDictionary<string, IBackendChange> changes) : IBackendChange
    {
        public BackendSnapshot Snapshot { get; } = new SetSnapshot(changes.ToDictionary(c => c.Key, c => c.Value.Snapshot));

        public void Accept(Engine.PendingChange change)
        {
            foreach (var (backend, part) in Split(change))
            {
                changes[backend].Accept(part);
            }
        }

        public void Flush()
        {
            foreach (var c in changes.Values)
            {
                c.Flush();
            }
        }

        /// <summary>
        /// Commits the backends that gain forwards first, then the others; an old forward in another backend is
        /// removed only when its replacement was applied.
        /// </summary>
        public async Task<CommitOutcome> CommitAsync(IReadOnlyList<Engine.PendingChange> pending, Engine.IChangeObserver observer, CancellationToken ct)
        {
            var parts = pending.SelectMany(p => Split(p).Select(s => (Whole: p, s.Backend, s.Part))).ToList();
            var applied = new HashSet<Engine.PendingChange>();
            var any = false;
            var order = set.All.OrderBy(b => parts.Any(x => x.Backend == b.Name && x.Part.New is not null) ? 0 : 1).Select(b => b.Name).ToList();
            var addedNames = new HashSet<string>(PortForwardNames.Comparer);
            foreach (var name in order)
            {
                var mine = parts.Where(x => x.Backend == name)
                    .Where(x => x.Part.New is not null || x.Whole.New is null || addedNames.Contains(x.Whole.New.Name))
                    .ToList();
                if (mine.Count == 0)
                {
                    continue;
                }

                var outcome = await changes[name].CommitAsync(mine.Select(x => x.Part).ToList(), observer, ct).ConfigureAwait(false);
                any |= outcome.AnyApplied;
                foreach (var done in outcome.Applied)
                {
                    if (mine.FirstOrDefault(x => SameChange(x.Part, done)) is not { Whole: { } whole })
                    {
                        continue;
                    }

                    applied.Add(whole);
                    if (done.New is not null)
                    {
                        addedNames.Add(done.New.Name);
                    }
                }
            }

            return new CommitOutcome(pending.Where(applied.Contains).ToList(), any);
        }

        public void Dispose()
        {
            foreach (var c in changes.Values)
            {
                c.Dispose();
            }
        }

        /// <summary>A change as each backend sees it: a move becomes an add in the target and a removal in the source.</summary>
        private IEnumerable<(string Backend, Engine.PendingChange Part)> Split(Engine.PendingChange change)
        {
            var target = change.New is null ? null : set.TargetOf(change);
            var source = change.Old?.Backend;
            if (change.New is not null && change.Old is not null && source is not null && source != target)
            {
                yield return (target!, change with { Old = null });
                yield return (source, change with { New = null });
            }
            else if (change.New is not null)
            {
                yield return (target!, change);
            }
            else
            {
                yield return (source ?? set.Preferred.Name, change);
            }
        }

        /// <summary>The same change by the names it adds and removes (a backend may hand back a copy with the old forward re-read).</summary>
        private static bool SameChange(Engine.PendingChange a, Engine.PendingChange b) =>
            PortForwardNames.Same(a.New?.Name, b.New?.Name) && (a.New is not null || PortForwardNames.Same(a.Old?.Name, b.Old?.Name));
    }
}
