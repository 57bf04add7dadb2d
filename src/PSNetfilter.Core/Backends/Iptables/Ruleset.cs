
namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>A chain line of iptables-save: <c>:NAME POLICY [packets:bytes]</c>.</summary>
public sealed record ChainInfo(string Name, string Policy, ulong Packets, ulong Bytes)
{
    public bool IsBuiltin => Policy != "-";
}

/// <summary>
/// One rule line, kept as the exact text iptables-save printed after <c>-A CHAIN </c>, with its 1-based
/// position in its chain. Only rules the module owns are ever tokenised; every other rule is carried
/// through untouched.
/// </summary>
public sealed record RuleLine(string Table, string Chain, int Position, string Spec, ulong Packets, ulong Bytes, int LineNumber);

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

/// <summary>A parsed iptables-save (or ip6tables-save) dump of one family.</summary>
public sealed class Ruleset
{
    private readonly Dictionary<string, TableDump> _tables = new(StringComparer.Ordinal);

    public Ruleset(IpFamily family)
    {
        Family = family;
    }

    public IpFamily Family { get; }

    public IReadOnlyCollection<TableDump> Tables => _tables.Values;

    public TableDump? GetTable(string name) => _tables.TryGetValue(name, out var t) ? t : null;

    /// <summary>A table, or an empty stand-in when the dump did not have it (a fresh namespace prints nothing).</summary>
    public TableDump Table(string name) => GetTable(name) ?? new TableDump(name);

    internal TableDump GetOrAddTable(string name)
    {
        if (!_tables.TryGetValue(name, out var t))
        {
            t = new TableDump(name);
            _tables.Add(name, t);
        }

        return t;
    }
}
