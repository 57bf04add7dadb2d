using System.Text;
using System.Text.RegularExpressions;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests.Support;

/// <summary>Builds iptables-save text from rendered rules, the way iptables-save prints a ruleset.</summary>
internal static partial class SaveText
{
    /// <summary>
    /// Wraps rendered rules as iptables-save prints them: per table the built-in chains, the module chains of
    /// the rules (hooked and dispatch), the jumps, the dispatch jumps and the rules as <c>[0:0] -A CHAIN spec</c>
    /// lines, then COMMIT.
    /// </summary>
    /// <param name="normalize">Apply the rewrites iptables-save is documented to make (Golden/README.md):
    /// quoted comments, --ctproto as a number, conntrack options in kernel order, host prefixes dropped from conntrack addresses.</param>
    public static string Wrap(IEnumerable<RenderedRule> rules, bool normalize = false, bool counters = true)
    {
        var kernel = new FakeKernel(IpFamily.IPv4, normalize: normalize);
        kernel.Add(rules);
        return kernel.Save(counters);
    }

    private static readonly string[] ConntrackOrder =
    {
        "--ctstate", "--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst",
        "--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport",
    };

    /// <summary>Rewrites a spec the way iptables-save prints it back.</summary>
    public static string Normalize(string spec)
    {
        var tokens = spec.Split(' ');
        var output = new List<string>();
        for (var i = 0; i < tokens.Length; i++)
        {
            if (tokens[i] == "-m" && i + 1 < tokens.Length && tokens[i + 1] == "conntrack")
            {
                output.Add("-m");
                output.Add("conntrack");
                i += 2;
                var opts = new List<(string Key, string Value)>();
                while (i + 1 < tokens.Length && tokens[i].StartsWith("--ct", StringComparison.Ordinal))
                {
                    var value = tokens[i + 1];
                    if (tokens[i] == "--ctproto")
                    {
                        value = value switch { "tcp" => "6", "udp" => "17", _ => value };
                    }
                    else if (tokens[i] is "--ctorigdst" or "--ctreplsrc" or "--ctorigsrc" or "--ctrepldst")
                    {
                        value = HostSuffix().Replace(value, string.Empty);
                    }

                    opts.Add((tokens[i], value));
                    i += 2;
                }

                foreach (var (k, v) in opts.OrderBy(o => Array.IndexOf(ConntrackOrder, o.Key)))
                {
                    output.Add(k);
                    output.Add(v);
                }

                i--;
                continue;
            }

            if (tokens[i] == "--comment" && i + 1 < tokens.Length)
            {
                output.Add("--comment");
                output.Add(Quote(tokens[i + 1]));
                i++;
                continue;
            }

            output.Add(tokens[i]);
        }

        return string.Join(' ', output);
    }

    /// <summary>iptables-save quotes a comment unless it is only A-Z a-z 0-9 _ -; inside, " \ ' are escaped.</summary>
    public static string Quote(string comment)
    {
        if (comment.Length > 0 && PlainComment().IsMatch(comment))
        {
            return comment;
        }

        var sb = new StringBuilder("\"");
        foreach (var c in comment)
        {
            if (c is '"' or '\\' or '\'')
            {
                sb.Append('\\');
            }

            sb.Append(c);
        }

        return sb.Append('"').ToString();
    }

    [GeneratedRegex("/(32|128)$")]
    private static partial Regex HostSuffix();

    [GeneratedRegex("^[A-Za-z0-9_-]+$")]
    private static partial Regex PlainComment();
}
