using System.Diagnostics;
using PSNetfilter.Core.Engine;
using static PSNetfilter.Core.Engine.Timing;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// A change of the nftables backend: the accepted changes are rendered at the commit into one script
/// (<see cref="NftChangeScript.RenderOwned"/>) and applied as one transaction. A refused line is mapped back to the
/// forward that wrote it; that forward is reported and left out, and the rest is applied again. Nothing of a
/// refused transaction is in the kernel, so there is nothing to roll back. From <see cref="BatchFromForwards"/> added
/// forwards on, their elements go in one line per set (<c>batchElements</c>); a refused transaction is then rendered
/// again one line per element before anything is reported, so the forward that wrote the refused line is found as
/// before.
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

    /// <summary>From this many added forwards on, their elements are written one line per set (<see cref="NftChangeScript.RenderOwned"/>); a few forwards gain nothing from it.</summary>
    internal const int BatchFromForwards = 32;

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
        var batch = pending.Count(p => p.New is not null) >= BatchFromForwards;
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
            var (script, owners) = NftChangeScript.RenderOwned(Snapshot.State, adds, removes, batch);
            var rendered = Stopwatch.GetTimestamp();
            observer.Debug($"Plan: {adds.Count} to add, {removes.Count} to remove, one nft transaction of {owners.Count} line(s).");
            try
            {
                await _backend.ApplyAsync(script, owners, ct).ConfigureAwait(false);
                observer.Debug($"Timing: nft script rendered in {Ms(started, rendered)}, applied in {Ms(rendered, Stopwatch.GetTimestamp())}.");
            }
            catch (CommandFailedException) when (batch && adds.Count > 0)
            {
                // A refused batch of elements names no forward: the same change again, one line per element, finds it.
                batch = false;
                observer.Debug("The transaction was refused: rendering it again with one line per element, to tell which forward was refused.");
                continue;
            }
            catch (CommandFailedException ex) when (ex.Target is string owner && pending.Any(p => PortForwardNames.Same(p.New?.Name, owner)))
            {
                // The transaction applied nothing: drop the forward whose line was refused and apply the rest.
                observer.Failed(ex);
                pending.RemoveAll(p => PortForwardNames.Same(p.New?.Name, owner));
                continue;
            }

            // Then their accepts in iptables' filter FORWARD, where it drops (the transaction is in: no stop now, and
            // a refusal there is reported as it is, never taken for a refused line of the transaction).
            await _backend.Mirror.ApplyAsync(adds, names, observer, CancellationToken.None).ConfigureAwait(false);
            return new CommitOutcome(pending, true);
        }
    }

    public void Dispose()
    {
    }
}
