using PSNetfilter.Core.Iptables;

namespace PSNetfilter.Core.Planning;

/// <summary>
/// Turns "these forwards go, these come" into one iptables-restore --noflush payload per family. It only
/// ever writes to PSNF- chains and to the three jump rules that hook them in: it creates chains of the
/// dispatch tree and jumps when they are missing, deletes removed rules by their position in the
/// snapshot (taken under the namespace lock), appends new rules, and removes dispatch chains, and finally
/// the hooked chains and their jumps, that the change leaves empty. Built-in chains are never flushed,
/// policies never set, foreign rules never named.
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

        // The module's chains as the snapshot has them: rule counts and dispatch jumps (parent -> child).
        var chains = new Dictionary<string, ChainState>(StringComparer.Ordinal);
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tableName in RuleLayout.Tables)
        {
            var table = current.Table(tableName);
            foreach (var c in table.Chains.Where(c => c.Name.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)))
            {
                chains[c.Name] = new ChainState(tableName, c.Name, existed: true);
            }

            foreach (var r in table.Rules)
            {
                if (!r.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)
                    && r.Spec.Contains(RuleLayout.ChainPrefix, StringComparison.Ordinal)
                    && !RuleLayout.Hooks.Any(h => h.Table == tableName && r.Chain == h.BuiltinChain && r.Spec == h.JumpSpec)
                    && RuleTokenizer.JumpTarget(r.Spec) is { } target && target.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal))
                {
                    referenced.Add(target); // another program jumps to a module chain: it stays
                }

                if (chains.TryGetValue(r.Chain, out var cs))
                {
                    cs.Count++;
                    if (RuleLayout.DispatchTarget(r.Spec) is { } child)
                    {
                        cs.Dispatch[child] = r.Position;
                    }
                }
            }
        }

        var deletions = new List<(string Table, string Chain, int Position, string? Owner)>();
        foreach (var f in removes)
        {
            foreach (var r in f.Rules)
            {
                deletions.Add((r.Table, r.Chain, r.Line.Position, r.Name));
                if (chains.TryGetValue(r.Chain, out var cs))
                {
                    cs.Count--;
                }
            }
        }

        // Creations: hooked chains and jumps first, then the dispatch path of every new rule.
        var creations = new List<(string Table, string Line)>();
        foreach (var hook in RuleLayout.Hooks)
        {
            if (!addRules.Any(x => x.Rule.Table == hook.Table && (x.Rule.Chain == hook.Chain || x.Rule.Path.Count > 0 && x.Rule.Path[0].Parent == hook.Chain)))
            {
                continue;
            }

            if (!chains.ContainsKey(hook.Chain))
            {
                chains[hook.Chain] = new ChainState(hook.Table, hook.Chain, existed: false);
                creations.Add((hook.Table, $":{hook.Chain} - [0:0]"));
            }

            if (!ChangePlanner.HasJump(current.Table(hook.Table), hook))
            {
                creations.Add((hook.Table, $"-I {hook.BuiltinChain} 1 {hook.JumpSpec}"));
            }
        }

        var appends = new List<(string Table, string Line, string? Owner)>();
        foreach (var (def, rule) in addRules)
        {
            foreach (var step in rule.Path)
            {
                if (!chains.TryGetValue(step.Chain, out var child))
                {
                    chains[step.Chain] = child = new ChainState(step.Table, step.Chain, existed: false);
                    creations.Add((step.Table, $":{step.Chain} - [0:0]"));
                }

                var parent = chains[step.Parent];
                if (!parent.Dispatch.ContainsKey(step.Chain))
                {
                    parent.Dispatch[step.Chain] = 0; // planned
                    parent.Count++;
                    appends.Add((step.Table, $"-A {step.Parent} {step.Spec}", null));
                }
            }

            chains[rule.Chain].Count++;
            appends.Add((rule.Table, $"-A {rule.Chain} {rule.Spec}", def.Name));
        }

        // Dispatch chains the change leaves empty go, deepest first, with the jump that led to them.
        var dropped = new List<ChainState>();
        foreach (var cs in chains.Values.Where(c => RuleLayout.IsDispatchChain(c.Name)).OrderByDescending(c => c.Name.Length))
        {
            if (cs.Count > 0 || !cs.Existed || referenced.Contains(cs.Name))
            {
                continue;
            }

            var parent = chains.Values.FirstOrDefault(p => p.Dispatch.TryGetValue(cs.Name, out var pos) && pos > 0);
            if (parent is not null)
            {
                deletions.Add((parent.Table, parent.Name, parent.Dispatch[cs.Name], null));
                parent.Count--;
            }

            dropped.Add(cs);
        }

        // Hooked chains go too when the family is left with nothing in them.
        var hooksDropped = new List<ChainHook>();
        var removedNames = removes.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
        var remaining = state.Forwards.Count(f => !removedNames.Contains(f.Name)) + adds.Count;
        if (remaining == 0 && removes.Count > 0)
        {
            foreach (var hook in RuleLayout.Hooks)
            {
                if (chains.TryGetValue(hook.Chain, out var cs) && cs.Existed && cs.Count == 0 && !referenced.Contains(hook.Chain))
                {
                    hooksDropped.Add(hook);
                }
            }
        }

        foreach (var (table, line) in creations)
        {
            payload.Add(table, line);
        }

        // Deletions by position, highest first within each chain, so every position stays valid.
        foreach (var d in deletions.OrderBy(d => d.Table, StringComparer.Ordinal).ThenBy(d => d.Chain, StringComparer.Ordinal).ThenByDescending(d => d.Position))
        {
            payload.Add(d.Table, $"-D {d.Chain} {d.Position}", d.Owner);
        }

        foreach (var cs in dropped)
        {
            payload.Add(cs.Table, $"-X {cs.Name}");
        }

        foreach (var hook in hooksDropped)
        {
            foreach (var jump in current.Table(hook.Table).Rules.Where(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec))
            {
                payload.Add(hook.Table, $"-D {hook.BuiltinChain} {jump.Spec}");
            }

            payload.Add(hook.Table, $"-X {hook.Chain}");
        }

        foreach (var (table, line, owner) in appends)
        {
            payload.Add(table, line, owner);
        }

        return payload;
    }

    public static bool HasJump(TableDump table, ChainHook hook) =>
        table.Rules.Any(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec);

    private sealed class ChainState
    {
        public ChainState(string table, string name, bool existed)
        {
            Table = table;
            Name = name;
            Existed = existed;
        }

        public string Table { get; }

        public string Name { get; }

        public bool Existed { get; }

        /// <summary>Rules the chain will hold after the change.</summary>
        public int Count { get; set; }

        /// <summary>Dispatch jumps in this chain: child chain -> position in the snapshot (0 = planned now).</summary>
        public Dictionary<string, int> Dispatch { get; } = new(StringComparer.Ordinal);
    }
}
