using System.Text;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// An iptables-restore --noflush input for one family, built table by table. Each line remembers the
/// forward it belongs to, so a line number in an iptables-restore error maps back to that forward.
/// </summary>
public sealed class RestorePayload
{
    private readonly List<(string Table, string Line, string? Owner)> _lines = new();
    private (string Text, List<(string? Owner, string? Line)> Map)? _rendered;

    public RestorePayload(IpFamily family)
    {
        Family = family;
    }

    public IpFamily Family { get; }

    public bool IsEmpty => _lines.Count == 0;

    public int LineCount => _lines.Count;

    /// <summary>Line <paramref name="index"/> (0-based, in the order added) and its table.</summary>
    internal (string Table, string Line) LineAt(int index) => (_lines[index].Table, _lines[index].Line);

    /// <summary>Whether the payload removes a chain (<c>-X</c>): refused when the chain is not empty.</summary>
    public bool RemovesChains => _lines.Any(l => l.Line.StartsWith("-X ", StringComparison.Ordinal));

    public void Add(string table, string line, string? owner = null)
    {
        if (line.Contains('\n') || line.Contains('\r'))
        {
            throw new InvalidOperationException("A payload line cannot contain a line break.");
        }

        _lines.Add((table, line, owner));
        _rendered = null;
    }

    /// <summary>The tables the payload writes to, in the module's order.</summary>
    public IReadOnlyList<string> Tables => RuleLayout.Tables.Where(t => _lines.Any(l => l.Table == t)).ToList();

    /// <summary>The lines of one table, as a payload of its own (line numbers count from its own start).</summary>
    public RestorePayload ForTable(string table)
    {
        var part = new RestorePayload(Family);
        foreach (var (t, line, owner) in _lines)
        {
            if (t == table)
            {
                part.Add(t, line, owner);
            }
        }

        return part;
    }

    /// <summary>The text, tables in the module's order, each closed by COMMIT.</summary>
    public string Text => Render().Text;

    /// <summary>Which forward wrote payload line <paramref name="lineNumber"/> (1-based, as iptables-restore counts).</summary>
    public (string? Owner, string? Line) Locate(int lineNumber)
    {
        var (_, map) = Render();
        return lineNumber >= 1 && lineNumber <= map.Count ? map[lineNumber - 1] : (null, null);
    }

    /// <summary>
    /// True when a failure at payload line <paramref name="lineNumber"/> may leave earlier tables applied:
    /// iptables-restore commits each table at its COMMIT, so only a failure inside the first table is
    /// all-or-nothing. An unknown line counts as partial.
    /// </summary>
    public bool MayBePartial(int? lineNumber)
    {
        if (lineNumber is null)
        {
            return true;
        }

        var (_, map) = Render();
        var firstCommit = map.FindIndex(m => m.Line == "COMMIT") + 1;
        return firstCommit > 0 && lineNumber.Value > firstCommit;
    }

    private (string Text, List<(string? Owner, string? Line)> Map) Render() => _rendered ??= RenderNow();

    private (string Text, List<(string? Owner, string? Line)> Map) RenderNow()
    {
        var sb = new StringBuilder();
        var map = new List<(string?, string?)>();
        foreach (var table in RuleLayout.Tables)
        {
            var any = false;
            foreach (var (t, line, owner) in _lines)
            {
                if (t != table)
                {
                    continue;
                }

                if (!any)
                {
                    sb.Append('*').Append(table).Append('\n');
                    map.Add((null, "*" + table));
                    any = true;
                }

                sb.Append(line).Append('\n');
                map.Add((owner, line));
            }

            if (any)
            {
                sb.Append("COMMIT\n");
                map.Add((null, "COMMIT"));
            }
        }

        return (sb.ToString(), map);
    }
}
