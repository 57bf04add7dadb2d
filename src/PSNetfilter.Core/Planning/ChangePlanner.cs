using PSNetfilter.Core.Iptables;

namespace PSNetfilter.Core.Planning;

/// <summary>
/// Turns "these forwards go, these come" into one iptables-restore --noflush payload per family. It only
/// ever writes to PSNF- chains and their jump rules: it creates a chain and its jump when they are missing,
/// deletes removed forwards' rules, appends new ones, and, when a family is left
/// with no forward and no other rule in the module's chains, removes the jumps and the chains. Rules are
/// deleted by their position in the snapshot (taken under the namespace lock).
/// Built-in chains are never flushed, policies never set, foreign rules never named.
/// </summary>
public static class ChangePlanner
{
    public static RestorePayload Plan(Ruleset current, OwnedState state, IReadOnlyCollection<PortForwardDefinition> add, IReadOnlyCollection<PortForward> remove)
    {
        var family = current.Family;
        var payload = new RestorePayload(family);
        var adds = add.Where(a => a.Family == family).ToList();
        var removes = remove.Where(r => r.Family == family).ToList();
        var addRules = adds.SelectMany(a => RuleLayout.Render(a).Select(r => (Def: a, Rule: r))).ToList();
        var removedLines = removes.SelectMany(r => r.Rules).ToList();

        var removedNames = new HashSet<string>(removes.Select(r => r.Name), StringComparer.Ordinal);
        var remaining = state.Forwards.Count(f => !removedNames.Contains(f.Name)) + adds.Count;

        foreach (var hook in RuleLayout.Hooks)
        {
            var table = current.Table(hook.Table);
            var chainExists = table.HasChain(hook.Chain);
            var hookAdds = addRules.Where(x => x.Rule.Chain == hook.Chain).ToList();
            if (hookAdds.Count > 0)
            {
                if (!chainExists)
                {
                    payload.Add(hook.Table, $":{hook.Chain} - [0:0]");
                }

                if (!HasJump(table, hook))
                {
                    payload.Add(hook.Table, $"-I {hook.BuiltinChain} 1 {hook.JumpSpec}");
                }
            }
        }

        // Delete by position, last first, so earlier positions stay valid within the transaction. The text
        // iptables-save prints is not always accepted back by -D (nft normalises conntrack matches), the
        // position always is; the namespace lock keeps the snapshot current.
        foreach (var r in removedLines.OrderBy(r => r.Table, StringComparer.Ordinal).ThenBy(r => r.Chain, StringComparer.Ordinal).ThenByDescending(r => r.Line.Position))
        {
            payload.Add(r.Table, $"-D {r.Chain} {r.Line.Position}", r.Name);
        }

        foreach (var (def, rule) in addRules)
        {
            payload.Add(rule.Table, $"-A {rule.Chain} {rule.Spec}", def.Name);
        }

        if (remaining == 0 && (removedLines.Count > 0 || removes.Count > 0))
        {
            foreach (var hook in RuleLayout.Hooks)
            {
                var table = current.Table(hook.Table);
                if (!table.HasChain(hook.Chain))
                {
                    continue;
                }

                var inChain = table.Rules.Count(r => r.Chain == hook.Chain);
                var removedHere = removedLines.Count(r => r.Table == hook.Table && r.Chain == hook.Chain);
                if (inChain != removedHere)
                {
                    continue; // something else lives in the chain: keep it and its jump
                }

                foreach (var jump in table.Rules.Where(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec))
                {
                    payload.Add(hook.Table, $"-D {hook.BuiltinChain} {jump.Spec}");
                }

                payload.Add(hook.Table, $"-X {hook.Chain}");
            }
        }

        return payload;
    }

    public static bool HasJump(TableDump table, ChainHook hook) =>
        table.Rules.Any(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec);
}
