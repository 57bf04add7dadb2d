using System.Text;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Splits a rule spec the way iptables-restore does: words separated by spaces; a double-quoted word
/// may hold spaces, and a backslash inside it escapes the next character (iptables-save writes \", \\ and \').
/// </summary>
public static class RuleTokenizer
{
    /// <summary>The chain a rule jumps (-j) or goes (-g) to, if any.</summary>
    public static string? JumpTarget(string spec)
    {
        var tokens = Split(spec);
        var i = Math.Max(tokens.LastIndexOf("-j"), tokens.LastIndexOf("-g"));
        return i >= 0 && i + 1 < tokens.Count ? tokens[i + 1] : null;
    }

    public static List<string> Split(string spec)
    {
        var tokens = new List<string>();
        var sb = new StringBuilder();
        var inQuotes = false;
        var have = false;
        for (var i = 0; i < spec.Length; i++)
        {
            var c = spec[i];
            if (inQuotes)
            {
                if (c == '\\' && i + 1 < spec.Length)
                {
                    sb.Append(spec[++i]);
                }
                else if (c == '"')
                {
                    inQuotes = false;
                }
                else
                {
                    sb.Append(c);
                }

                continue;
            }

            if (c == ' ' || c == '\t')
            {
                if (have)
                {
                    tokens.Add(sb.ToString());
                    sb.Clear();
                    have = false;
                }

                continue;
            }

            have = true;
            if (c == '"')
            {
                inQuotes = true;
            }
            else
            {
                sb.Append(c);
            }
        }

        if (have)
        {
            tokens.Add(sb.ToString());
        }

        return tokens;
    }
}
