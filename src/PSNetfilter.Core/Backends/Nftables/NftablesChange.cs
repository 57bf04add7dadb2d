using System.Diagnostics;
using PSNetfilter.Core.Engine;
using static PSNetfilter.Core.Engine.Timing;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// A change of the nftables backend: the accepted changes are rendered at the commit into one script
/// (<see cref="NftChangeScript.RenderOwned"/>) and applied as one transaction. A refused line is mapped back to the
/// forward that wrote it; that forward is reported and left out, and the rest is applied again. Nothing of a
/// refused transaction is in the kernel, so there is nothing to roll back.
/// </summary>
internal sealed class NftablesChange : IBackendChange
{
    private readonly NftablesNetfilterBackend _backend;
    private readonly ReadOptions _options;

    public NftablesChange(NftablesNetfilterBackend backend, NftablesSnapshot snapshot, ReadOptions options)
    {
        _backend = backend;
        Snapshot = snapshot;
        _options = options;
    }

    public NftablesSnapshot Snapshot { get; }

    BackendSnapshot IBackendChange.Snapshot => Snapshot;

    public void Accept(PendingChange change)
    {
    }

    public void Flush()
    {
    }

    public async Task<CommitOutcome> CommitAsync(IReadOnlyList<PendingChange> changes, IChangeObserver observer, CancellationToken ct)
    {
        var pending = changes.ToList();
        var byName = Snapshot.State.Forwards.ToLookup(f => f.Name, PortForwardNames.Comparer);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var adds = pending.Where(p => p.New is not null).Select(p => p.New!).ToList();

            // What goes: the removed and replaced forwards, and whatever is left in the table of a name that is
            // added now (a forward that lost its definition part, or a replace across a change of case).
            var names = pending.Where(p => p.Old?.Backend == _backend.Name).Select(p => p.Old!.Name).Concat(adds.Select(a => a.Name)).ToHashSet(PortForwardNames.Comparer);
            var removes = names.SelectMany(n => byName[n]).ToList();
            if (adds.Count == 0 && removes.Count == 0)
            {
                return new CommitOutcome(pending, false);
            }

            var started = Stopwatch.GetTimestamp();
            var (script, owners) = NftChangeScript.RenderOwned(Snapshot.State, adds, removes);
            var rendered = Stopwatch.GetTimestamp();
            observer.Debug($"Plan: {adds.Count} to add, {removes.Count} to remove, one nft transaction of {owners.Count} line(s).");
            try
            {
                await _backend.ApplyAsync(script, owners, ct).ConfigureAwait(false);
                observer.Debug($"Timing: nft script rendered in {Ms(started, rendered)}, applied in {Ms(rendered, Stopwatch.GetTimestamp())}.");
                return new CommitOutcome(pending, true);
            }
            catch (CommandFailedException ex) when (ex.Target is string owner && pending.Any(p => PortForwardNames.Same(p.New?.Name, owner)))
            {
                // The transaction applied nothing: drop the forward whose line was refused and apply the rest.
                observer.Failed(ex);
                pending.RemoveAll(p => PortForwardNames.Same(p.New?.Name, owner));
            }
        }
    }

    public void Dispose()
    {
    }
}
