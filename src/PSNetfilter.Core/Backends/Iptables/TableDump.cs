namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>One table of an iptables-save dump.</summary>
public sealed class TableDump
{
    private readonly Dictionary<string, ChainInfo> _chains = new(StringComparer.Ordinal);

    public TableDump(string name)
    {
        Name = name;
    }

    public string Name { get; }

    public IReadOnlyCollection<ChainInfo> Chains => _chains.Values;

    public List<RuleLine> Rules { get; } = new();

    public bool HasChain(string chain) => _chains.ContainsKey(chain);

    public ChainInfo? GetChain(string chain) => _chains.TryGetValue(chain, out var c) ? c : null;

    internal void AddChain(ChainInfo chain) => _chains[chain.Name] = chain;

    /// <summary>
    /// <paramref name="start"/> and every rule of every chain a packet can reach from them by -j or -g, followed
    /// transitively, each chain once: what can act on a packet that reaches those rules.
    /// </summary>
    public IEnumerable<RuleLine> RulesReachedFrom(IEnumerable<RuleLine> start)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Queue<RuleLine>(start);
        while (pending.Count > 0)
        {
            var rule = pending.Dequeue();
            yield return rule;
            if (RuleTokenizer.JumpTarget(rule.Spec) is { } target && seen.Add(target))
            {
                foreach (var inner in Rules.Where(r => r.Chain == target))
                {
                    pending.Enqueue(inner);
                }
            }
        }
    }
}
