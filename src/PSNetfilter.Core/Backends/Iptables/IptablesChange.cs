using PSNetfilter.Core.Engine;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// A change of the iptables backend: the snapshot it was planned on, the iptables-restore processes started
/// for it while the rulesets were read, and, for a streamed change, one plan builder per family whose lines go
/// to those processes while the pipeline still runs. The commit applies one payload per family; a payload the
/// kernel took only partly (one process per table, one of them refused) is rolled back forward by forward.
/// </summary>
internal sealed class IptablesChange : IBackendChange
{
    private static readonly IpFamily[] Families = { IpFamily.IPv4, IpFamily.IPv6 };

    private readonly IptablesNetfilterBackend _backend;
    private readonly ReadOptions _options;
    private readonly Dictionary<IpFamily, Task<PreparedRestore>> _prepared;

    /// <summary>Null: the change is planned and applied at the commit.</summary>
    private Dictionary<IpFamily, ChangePlanBuilder>? _stream;

    public IptablesChange(IptablesNetfilterBackend backend, IptablesSnapshot snapshot, ReadOptions options, Dictionary<IpFamily, Task<PreparedRestore>> prepared, bool stream)
    {
        _backend = backend;
        Snapshot = snapshot;
        _options = options;
        _prepared = prepared;
        _stream = stream ? new() : null;
    }

    public IptablesSnapshot Snapshot { get; }

    BackendSnapshot IBackendChange.Snapshot => Snapshot;

    public void Accept(PendingChange change)
    {
        if (_stream is null)
        {
            return;
        }

        if (change.Old is { } old)
        {
            BuilderFor(old.Family).Remove(old);
        }

        if (change.New is { } add)
        {
            BuilderFor(add.Family).Add(add);
        }
    }

    /// <summary>Writes the lines planned since the last call to the running restores (a streamed change).</summary>
    public void Flush()
    {
        if (_stream is null)
        {
            return;
        }

        foreach (var (family, builder) in _stream)
        {
            // Started (and awaited) when the streamed change was opened; a family that came later has none.
            if (_prepared.TryGetValue(family, out var restore) && restore.IsCompletedSuccessfully)
            {
                restore.Result.WriteNew(builder.Payload);
            }
        }
    }

    public async Task<CommitOutcome> CommitAsync(IReadOnlyList<PendingChange> changes, IChangeObserver observer, CancellationToken ct)
    {
        var pending = changes.ToList();
        var applied = false;

        // Families that gain rules go first: a cross-family replace (-Force, IPv4 -> IPv6) then removes the old
        // forward only once the new one is in; a refused add leaves the old one where it was.
        var order = Families.OrderBy(f => pending.Any(p => p.New?.Family == f) ? 0 : 1).ToList();
        foreach (var family in order)
        {
            var ruleset = Snapshot.Rulesets[family];
            var state = Snapshot.States[family];
            var reread = false;
            while (true)
            {
                // Once one family is applied, the rest of the batch is applied too: a stop then takes effect after it.
                var token = applied ? CancellationToken.None : ct;
                token.ThrowIfCancellationRequested();
                var adds = pending.Where(i => i.New?.Family == family).Select(i => i.New!).ToList();
                var removes = pending.Where(i => i.Old?.Family == family).Select(i => i.Old!).ToList();
                if (adds.Count == 0 && removes.Count == 0)
                {
                    break;
                }

                var streamed = TakeBuilder(family);
                var payload = streamed?.Finish() ?? ChangePlanner.Plan(ruleset, state, adds, removes);
                if (streamed is null && payload.RemovesChains && !reread)
                {
                    // Chains are removed only when empty, and another backend of the namespace may have written
                    // into them since the snapshot (the nftables backend's FORWARD accept, committed first in a
                    // move): plan the removal on a fresh read, under the same lock.
                    reread = true;
                    (ruleset, state) = await _backend.ReadFamilyAsync(family, _options, token).ConfigureAwait(false);
                    payload = ChangePlanner.Plan(ruleset, state, adds, removes);
                }

                observer.Debug($"Plan ({family}): {adds.Count} to add, {removes.Count} to remove, an iptables-restore payload of {payload.LineCount} line(s).");
                try
                {
                    await _backend.Tools.RestoreAsync(payload, token, await TakePreparedAsync(family).ConfigureAwait(false)).ConfigureAwait(false);
                    applied = true;
                    break;
                }
                catch (CommandFailedException ex)
                {
                    if (ex.PartlyApplied ?? payload.MayBePartial(ex.FailedLine))
                    {
                        // iptables-restore commits table by table: the tables before the failing one (or, with one
                        // process per table, the others that succeeded) are in the kernel. Re-read and remove every
                        // rule of the batch's names, so each of them is either whole (untouched) or absent, never
                        // half there.
                        (ruleset, state) = await _backend.ReadFamilyAsync(family, _options, CancellationToken.None).ConfigureAwait(false);
                        await RollBackAsync(ruleset, state, pending.Where(i => (i.New ?? i.Old!.Definition).Family == family).ToList(), observer).ConfigureAwait(false);
                        (ruleset, state) = await _backend.ReadFamilyAsync(family, _options, CancellationToken.None).ConfigureAwait(false);

                        // Plan the rest against what is there now: a name rolled back has no rules left to delete.
                        var now = state.Forwards.ToDictionary(f => f.Name, StringComparer.Ordinal);
                        pending = pending
                            .Select(i => i.Old is not null && i.Old.Family == family ? i with { Old = now.GetValueOrDefault(i.Old.Name) } : i)
                            .Where(i => i.New is not null || i.Old is not null)
                            .ToList();
                    }

                    if (ex.Target is string owner && pending.Any(i => i.New?.Name == owner))
                    {
                        // One forward's rule was refused: report it, drop it, and apply the rest again.
                        observer.Failed(ex);
                        pending.RemoveAll(i => i.New?.Name == owner);
                        continue;
                    }

                    throw;
                }
            }
        }

        return new CommitOutcome(pending, applied);
    }

    /// <summary>Closes prepared restores that got no payload (they apply nothing).</summary>
    public void Dispose()
    {
        var open = _prepared.Values.ToList();
        _prepared.Clear();
        Close(open);
    }

    /// <summary>Closes restores started for a change that will not feed them: iptables-restore then applies nothing.</summary>
    internal static void Close(IEnumerable<Task<PreparedRestore>> restores)
    {
        try
        {
            foreach (var task in restores)
            {
                if (task.Wait(TimeSpan.FromSeconds(30)))
                {
                    task.Result.ReleaseAsync().Wait(TimeSpan.FromSeconds(30));
                }
            }
        }
        catch (AggregateException)
        {
            // A restore that could not start has nothing to close.
        }
    }

    /// <summary>The streamed plan of <paramref name="family"/>, once (a retry plans afresh).</summary>
    private ChangePlanBuilder? TakeBuilder(IpFamily family) =>
        _stream is not null && _stream.Remove(family, out var builder) ? builder : null;

    private ChangePlanBuilder BuilderFor(IpFamily family)
    {
        if (!_stream!.TryGetValue(family, out var builder))
        {
            _stream[family] = builder = new ChangePlanBuilder(Snapshot.Rulesets[family], Snapshot.States[family]);
        }

        return builder;
    }

    /// <summary>The prepared restore of <paramref name="family"/>, once (a retry starts its own).</summary>
    private async Task<PreparedRestore?> TakePreparedAsync(IpFamily family)
    {
        if (!_prepared.Remove(family, out var task))
        {
            return null;
        }

        try
        {
            return await task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            return null; // could not start it: the restore starts its own, and reports why if that fails too
        }
    }

    /// <summary>After a partly applied payload: removes what is left of the batch's names (added or removed).</summary>
    private async Task RollBackAsync(Ruleset ruleset, OwnedState state, List<PendingChange> batch, IChangeObserver observer)
    {
        var names = batch.Select(i => (i.New ?? i.Old!.Definition).Name).ToHashSet(StringComparer.Ordinal);
        var leftovers = state.Forwards.Where(f => names.Contains(f.Name)).ToList();
        if (leftovers.Count == 0)
        {
            return;
        }

        observer.Warning($"iptables-restore applied only part of the change; removing what it left of: {string.Join(", ", leftovers.Select(f => f.Name))}.");
        var cleanup = ChangePlanner.Plan(ruleset, state, Array.Empty<PortForwardDefinition>(), leftovers);
        await _backend.Tools.RestoreAsync(cleanup, CancellationToken.None).ConfigureAwait(false);
    }
}
