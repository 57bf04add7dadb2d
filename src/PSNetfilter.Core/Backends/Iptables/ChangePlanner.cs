namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Turns "these forwards go, these come" into one iptables-restore --noflush payload per family. It only
/// ever writes to PSNF- chains and to the three jump rules that hook them in: it creates chains of the
/// dispatch tree and jumps when they are missing, appends new rules, deletes removed rules by their position
/// in the snapshot (taken under the namespace lock), and removes dispatch chains, and finally the hooked
/// chains and their jumps, that the change leaves empty. Built-in chains are never flushed, policies never
/// set, foreign rules never named.
/// </summary>
public static class ChangePlanner
{
    public static RestorePayload Plan(Ruleset current, OwnedState state, IReadOnlyCollection<PortForwardDefinition> add, IReadOnlyCollection<PortForward> remove)
    {
        var builder = new ChangePlanBuilder(current, state);
        foreach (var f in remove.Where(r => r.Family == current.Family))
        {
            builder.Remove(f);
        }

        foreach (var d in add.Where(a => a.Family == current.Family))
        {
            builder.Add(d);
        }

        return builder.Finish();
    }

    public static bool HasJump(TableDump table, ChainHook hook) =>
        table.Rules.Any(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec);
}
