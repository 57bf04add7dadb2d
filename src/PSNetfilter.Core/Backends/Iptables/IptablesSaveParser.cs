using System.Globalization;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Reads iptables-save / ip6tables-save output (nft or legacy backend, with or without <c>-c</c> counters)
/// in one linear pass. Rule lines are kept as text; nothing beyond the table, chain and counters is
/// interpreted here, so matches and targets the module does not model pass through untouched.
/// </summary>
public static class IptablesSaveParser
{
    public static Ruleset Parse(string text, IpFamily family)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ruleset = new Ruleset(family);
        TableDump? table = null;
        var positions = new Dictionary<string, int>(StringComparer.Ordinal);
        var lineNumber = 0;
        var lastLine = 0;
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            var line = rawLine.TrimEnd();
            if (line.IsEmpty || line[0] == '#')
            {
                continue;
            }

            lastLine = lineNumber;

            switch (line[0])
            {
                case '*':
                    if (table is not null)
                    {
                        throw new RulesetParseException(lineNumber, line.ToString(), $"table '{table.Name}' has no COMMIT before the next table");
                    }

                    table = ruleset.GetOrAddTable(line[1..].ToString());
                    positions.Clear();
                    break;
                case ':':
                    if (table is null)
                    {
                        throw new RulesetParseException(lineNumber, line.ToString(), "chain before any table");
                    }

                    table.AddChain(ParseChain(line, lineNumber));
                    break;
                case 'C' when line.SequenceEqual("COMMIT"):
                    table = null;
                    break;
                case '[':
                case '-':
                    if (table is null)
                    {
                        throw new RulesetParseException(lineNumber, line.ToString(), "rule before any table");
                    }

                    table.Rules.Add(ParseRule(table.Name, line, lineNumber, positions));
                    break;
                default:
                    throw new RulesetParseException(lineNumber, line.ToString(), "unexpected line");
            }
        }

        if (table is not null)
        {
            throw new RulesetParseException(lastLine, string.Empty, $"table '{table.Name}' has no COMMIT");
        }

        return ruleset;
    }

    private static ChainInfo ParseChain(ReadOnlySpan<char> line, int lineNumber)
    {
        // :NAME POLICY [p:b]
        var rest = line[1..];
        var sp = rest.IndexOf(' ');
        if (sp <= 0)
        {
            throw new RulesetParseException(lineNumber, line.ToString(), "chain line without policy");
        }

        var name = rest[..sp].ToString();
        rest = rest[(sp + 1)..];
        sp = rest.IndexOf(' ');
        var policy = (sp < 0 ? rest : rest[..sp]).ToString();
        ulong p = 0, b = 0;
        if (sp >= 0)
        {
            ParseCounters(rest[(sp + 1)..].Trim(), line, lineNumber, out p, out b);
        }

        return new ChainInfo(name, policy, p, b);
    }

    private static RuleLine ParseRule(string table, ReadOnlySpan<char> line, int lineNumber, Dictionary<string, int> positions)
    {
        ulong p = 0, b = 0;
        var rest = line;
        if (rest[0] == '[')
        {
            var close = rest.IndexOf(']');
            if (close < 0)
            {
                throw new RulesetParseException(lineNumber, line.ToString(), "unterminated counters");
            }

            ParseCounters(rest[..(close + 1)], line, lineNumber, out p, out b);
            rest = rest[(close + 1)..].TrimStart();
        }

        if (!rest.StartsWith("-A "))
        {
            throw new RulesetParseException(lineNumber, line.ToString(), "rule line does not start with -A");
        }

        rest = rest[3..];
        var sp = rest.IndexOf(' ');
        var chain = (sp < 0 ? rest : rest[..sp]).ToString();
        var spec = sp < 0 ? string.Empty : rest[(sp + 1)..].ToString();
        positions.TryGetValue(chain, out var position);
        positions[chain] = ++position;
        return new RuleLine(table, chain, position, spec, p, b, lineNumber);
    }

    private static void ParseCounters(ReadOnlySpan<char> text, ReadOnlySpan<char> line, int lineNumber, out ulong packets, out ulong bytes)
    {
        // [p:b]
        if (text.Length < 5 || text[0] != '[' || text[^1] != ']')
        {
            throw new RulesetParseException(lineNumber, line.ToString(), "malformed counters");
        }

        var inner = text[1..^1];
        var colon = inner.IndexOf(':');
        if (colon < 0
            || !ulong.TryParse(inner[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out packets)
            || !ulong.TryParse(inner[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out bytes))
        {
            throw new RulesetParseException(lineNumber, line.ToString(), "malformed counters");
        }
    }
}
