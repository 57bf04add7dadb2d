namespace PSNetfilter.Core.Backends.Iptables;

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
