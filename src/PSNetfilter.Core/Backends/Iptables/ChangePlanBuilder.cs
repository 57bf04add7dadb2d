namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Builds the payload of <see cref="ChangePlanner.Plan"/> forward by forward, so that it can be written to a
/// running iptables-restore while the rest of a pipeline still arrives. Lines are only ever appended:
/// <list type="number">
/// <item>per added forward, in order: the module chains it needs that do not exist yet (a hooked chain with
/// its jump at position 1 of the built-in chain, dispatch chains) and the dispatch jumps to them, then its
/// rules;</item>
/// <item>at <see cref="Finish"/>: the removed rules, deleted by their position in the snapshot, highest
/// first within each chain, then the dispatch chains (and, when a family is left without forwards, the
/// hooked chains) the change leaves empty.</item>
/// </list>
/// Appending never moves a rule that is already there, so the snapshot's positions stay valid until the
/// deletions at the end, and a new chain is always declared before the first jump to it.
/// </summary>
public sealed class ChangePlanBuilder
{
    private readonly Ruleset _current;
    private readonly OwnedState _state;
    private readonly Dictionary<string, ChainState> _chains = new(StringComparer.Ordinal);
    private readonly HashSet<string> _referenced = new(StringComparer.Ordinal);
    private readonly HashSet<ChainHook> _hooked = new();
    private readonly List<(string Table, string Chain, int Position, string? Owner)> _deletions = new();
    private readonly List<PortForward> _removed = new();
    private readonly DispatchPathCache _paths = new();
    private readonly HashSet<string> _removedMirrors = new(StringComparer.Ordinal);
    private int _added;
    private int _mirrorsAdded;
    private bool _finished;

    public ChangePlanBuilder(Ruleset current, OwnedState state)
    {
        _current = current;
        _state = state;
        Payload = new RestorePayload(current.Family);

        // The module's chains as the snapshot has them: rule counts and dispatch jumps (parent -> child).
        foreach (var tableName in RuleLayout.Tables)
        {
            var table = current.Table(tableName);
            foreach (var c in table.Chains.Where(c => c.Name.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)))
            {
                _chains[c.Name] = new ChainState(tableName, c.Name, existed: true);
            }

            foreach (var r in table.Rules)
            {
                if (!r.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)
                    && r.Spec.Contains(RuleLayout.ChainPrefix, StringComparison.Ordinal)
                    && !RuleLayout.Hooks.Any(h => h.Table == tableName && r.Chain == h.BuiltinChain && r.Spec == h.JumpSpec)
                    && RuleTokenizer.JumpTarget(r.Spec) is { } target && target.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal))
                {
                    _referenced.Add(target); // another program jumps to a module chain: it stays
                }

                if (_chains.TryGetValue(r.Chain, out var cs))
                {
                    cs.Count++;
                    if (RuleLayout.DispatchTarget(r.Spec) is { } child)
                    {
                        cs.Dispatch[child] = r.Position;
                    }
                }
            }
        }
    }

    public IpFamily Family => _current.Family;

    /// <summary>The lines so far; complete once <see cref="Finish"/> has run.</summary>
    public RestorePayload Payload { get; }

    /// <summary>Appends what adding <paramref name="def"/> takes: missing chains and jumps, then its rules.</summary>
    public void Add(PortForwardDefinition def)
    {
        if (_finished || def.Family != Family)
        {
            throw new InvalidOperationException(_finished ? "The plan is finished." : "A forward of another family.");
        }

        _added++;
        AddRules(def.Name, RuleLayout.Render(def, _paths));
    }

    /// <summary>
    /// Appends the FORWARD accept the nftables backend keeps in this table for its forward <paramref name="def"/>
    /// (<see cref="RuleLayout.RenderForwardMirror"/>), with the chains and jumps it needs, as <see cref="Add"/> does.
    /// </summary>
    public void AddMirror(PortForwardDefinition def)
    {
        if (_finished || def.Family != Family)
        {
            throw new InvalidOperationException(_finished ? "The plan is finished." : "A forward of another family.");
        }

        _mirrorsAdded++;
        AddRules(def.Name, new[] { RuleLayout.RenderForwardMirror(def, _paths) });
    }

    /// <summary>Records that the nftables forward <paramref name="name"/>'s FORWARD accept goes; deleted at <see cref="Finish"/>.</summary>
    public void RemoveMirror(string name)
    {
        if (_finished)
        {
            throw new InvalidOperationException("The plan is finished.");
        }

        if (_state.MirrorsOf.TryGetValue(name, out var rules) && _removedMirrors.Add(name))
        {
            Delete(rules);
        }
    }

    private void AddRules(string owner, IEnumerable<RenderedRule> rendered)
    {
        foreach (var rule in rendered)
        {
            var hook = RuleLayout.HookFor(rule.Role);
            if (_hooked.Add(hook))
            {
                if (!_chains.ContainsKey(hook.Chain))
                {
                    _chains[hook.Chain] = new ChainState(hook.Table, hook.Chain, existed: false);
                    Payload.Add(hook.Table, $":{hook.Chain} - [0:0]");
                }

                if (!ChangePlanner.HasJump(_current.Table(hook.Table), hook))
                {
                    Payload.Add(hook.Table, $"-I {hook.BuiltinChain} 1 {hook.JumpSpec}");
                }
            }

            foreach (var step in rule.Path)
            {
                if (!_chains.TryGetValue(step.Chain, out var child))
                {
                    _chains[step.Chain] = child = new ChainState(step.Table, step.Chain, existed: false);
                    Payload.Add(step.Table, $":{step.Chain} - [0:0]");
                }

                var parent = _chains[step.Parent];
                if (!parent.Dispatch.ContainsKey(step.Chain))
                {
                    parent.Dispatch[step.Chain] = 0; // planned
                    parent.Count++;
                    Payload.Add(step.Table, $"-A {step.Parent} {step.Spec}");
                }
            }

            _chains[rule.Chain].Count++;
            Payload.Add(rule.Table, $"-A {rule.Chain} {rule.Spec}", owner);
        }
    }

    /// <summary>Records that <paramref name="forward"/> goes; its rules are deleted at <see cref="Finish"/>.</summary>
    public void Remove(PortForward forward)
    {
        if (_finished || forward.Family != Family)
        {
            throw new InvalidOperationException(_finished ? "The plan is finished." : "A forward of another family.");
        }

        _removed.Add(forward);
        Delete(_state.RulesOf.GetValueOrDefault(forward.Name) ?? new List<OwnedRule>());
    }

    private void Delete(IEnumerable<OwnedRule> rules)
    {
        foreach (var r in rules)
        {
            _deletions.Add((r.Table, r.Chain, r.Line.Position, r.Name));
            if (_chains.TryGetValue(r.Chain, out var cs))
            {
                cs.Count--;
            }
        }
    }

    /// <summary>Appends the deletions and the removal of chains left empty; the payload is then complete.</summary>
    public RestorePayload Finish()
    {
        if (_finished)
        {
            return Payload;
        }

        _finished = true;

        // Dispatch chains the change leaves empty go, deepest first, with the jump that led to them.
        var dropped = new List<ChainState>();
        foreach (var cs in _chains.Values.Where(c => RuleLayout.IsDispatchChain(c.Name)).OrderByDescending(c => c.Name.Length))
        {
            if (cs.Count > 0 || !cs.Existed || _referenced.Contains(cs.Name))
            {
                continue;
            }

            var parent = _chains.Values.FirstOrDefault(p => p.Dispatch.TryGetValue(cs.Name, out var pos) && pos > 0);
            if (parent is not null)
            {
                _deletions.Add((parent.Table, parent.Name, parent.Dispatch[cs.Name], null));
                parent.Count--;
            }

            dropped.Add(cs);
        }

        // Hooked chains go too when the family is left with nothing in them.
        var hooksDropped = new List<ChainHook>();
        var removedNames = _removed.Select(r => r.Name).ToHashSet(StringComparer.Ordinal);
        var remaining = _state.Forwards.Count(f => !removedNames.Contains(f.Name)) + _added
            + _state.MirrorsOf.Keys.Count(n => !_removedMirrors.Contains(n)) + _mirrorsAdded;
        if (remaining == 0 && (_removed.Count > 0 || _removedMirrors.Count > 0))
        {
            foreach (var hook in RuleLayout.Hooks)
            {
                if (_chains.TryGetValue(hook.Chain, out var cs) && cs.Existed && cs.Count == 0 && !_referenced.Contains(hook.Chain))
                {
                    hooksDropped.Add(hook);
                }
            }
        }

        // Deletions by position, highest first within each chain, so every position stays valid (the lines
        // appended before them only ever added rules at the end of chains).
        foreach (var d in _deletions.OrderBy(d => d.Table, StringComparer.Ordinal).ThenBy(d => d.Chain, StringComparer.Ordinal).ThenByDescending(d => d.Position))
        {
            Payload.Add(d.Table, $"-D {d.Chain} {d.Position}", d.Owner);
        }

        foreach (var cs in dropped)
        {
            Payload.Add(cs.Table, $"-X {cs.Name}");
        }

        foreach (var hook in hooksDropped)
        {
            foreach (var jump in _current.Table(hook.Table).Rules.Where(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec))
            {
                Payload.Add(hook.Table, $"-D {hook.BuiltinChain} {jump.Spec}");
            }

            Payload.Add(hook.Table, $"-X {hook.Chain}");
        }

        return Payload;
    }

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
