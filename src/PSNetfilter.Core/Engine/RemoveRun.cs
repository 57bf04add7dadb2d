namespace PSNetfilter.Core.Engine;

/// <summary>Remove-PortForward's change for one namespace: select, forget or remove, apply, and take the accept rules along.</summary>
public static class RemoveRun
{
    /// <summary>
    /// Opens a change, selects the forwards <paramref name="selectors"/> name (a recorded forward whose rules are
    /// gone is forgotten), applies the removal, and deletes the accept rules -AcceptInOtherTables put into other
    /// tables for the removed forwards.
    /// </summary>
    public static IReadOnlyList<ChangeResult> Apply(PortForwardManager manager, IReadOnlyList<NameSelector> selectors, ICmdletThread thread)
    {
        using var session = thread.Run(ct => manager.OpenAsync(ct));
        var missing = thread.Run(ct => manager.MissingAsync(session.Snapshot.Forwards));
        manager.PlanRemoves(session, selectors, missing);
        thread.Flush();
        var results = thread.Run(ct => manager.CommitAsync(session, ct));
        var removed = results.Where(r => r.Kind == ChangeKind.Removed).Select(r => r.Forward.Name).ToList();
        thread.Run(async ct =>
        {
            await manager.RemoveAcceptRulesAsync(removed, ct).ConfigureAwait(false);
            return removed.Count;
        });
        return results;
    }
}
