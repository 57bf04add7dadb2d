using System.Text;
using System.Text.RegularExpressions;

namespace PSNetfilter;

/// <summary>
/// One -Name value: a literal name (validated, an error when it matches nothing) or a wildcard pattern with
/// PowerShell's syntax (<c>*</c>, <c>?</c>, <c>[a-c]</c>, a backtick escapes the next character). Both match
/// ignoring case. A pattern that cannot be read (an unclosed <c>[</c>, as in <c>d[</c>) is refused with
/// <c>InvalidNamePattern</c>: it cannot be a literal name either, since names never hold <c>[</c>.
/// </summary>
public sealed class NameSelector
{
    private static readonly char[] WildcardCharacters = { '*', '?', '[', ']', '`' };
    private readonly Regex? _pattern;

    private NameSelector(string text, Regex? pattern)
    {
        Text = text;
        _pattern = pattern;
    }

    /// <summary>The name or pattern as given.</summary>
    public string Text { get; }

    /// <summary>A literal name: matching nothing is <see cref="PortForwardNames.NotFound"/>.</summary>
    public bool IsLiteral => _pattern is null;

    /// <exception cref="PortForwardValidationException">InvalidName (a literal that is no valid name) or InvalidNamePattern.</exception>
    public static NameSelector Parse(string? text)
    {
        text ??= string.Empty;
        if (text.IndexOfAny(WildcardCharacters) < 0)
        {
            PortForwardDefinition.ValidateName(text);
            return new NameSelector(text, null);
        }

        var regex = ToRegex(text);
        try
        {
            return new NameSelector(text, new Regex(regex, RegexOptions.IgnoreCase | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)));
        }
        catch (ArgumentException ex)
        {
            throw Invalid(text, $"its character set cannot be read ({ex.Message})");
        }
    }

    /// <summary>Selects exactly one forward, by its own name (a piped forward).</summary>
    public static NameSelector Literal(string name) => new(name, null);

    public static IReadOnlyList<NameSelector> ParseAll(IEnumerable<string?>? texts) => (texts ?? Array.Empty<string?>()).Select(Parse).ToList();

    public bool Matches(string name) => _pattern?.IsMatch(name) ?? PortForwardNames.Same(Text, name);

    /// <summary>The literal selectors that match none of <paramref name="names"/>.</summary>
    public static IEnumerable<NameSelector> Unmatched(IEnumerable<NameSelector> selectors, IReadOnlyCollection<string> names) =>
        selectors.Where(s => s.IsLiteral && !names.Any(s.Matches));

    private static string ToRegex(string text)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case '`' when i + 1 < text.Length:
                    regex.Append(Regex.Escape(text[++i].ToString()));
                    break;
                case '*':
                    regex.Append(".*");
                    break;
                case '?':
                    regex.Append('.');
                    break;
                case '[':
                    var close = text.IndexOf(']', i + 1);
                    if (close <= i + 1)
                    {
                        throw Invalid(text, close < 0 ? "it opens a '[' that no ']' closes" : "it has an empty '[]'");
                    }

                    regex.Append('[');
                    for (var j = i + 1; j < close; j++)
                    {
                        var d = text[j];
                        regex.Append(d == '-' && j > i + 1 && j < close - 1 ? "-" : Regex.Escape(d.ToString()).Replace("-", "\\-", StringComparison.Ordinal).Replace("]", "\\]", StringComparison.Ordinal));
                    }

                    regex.Append(']');
                    i = close;
                    break;
                default:
                    regex.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }

        return regex.Append("\\z").ToString();
    }

    private static PortForwardValidationException Invalid(string text, string why) => new(
        "InvalidNamePattern",
        $"The name pattern '{PortForwardDefinition.Printable(text)}' is not valid: {why}. Use * and ? as wildcards, [abc] or [a-c] for one of a set of characters, and a backtick to take a wildcard character literally.",
        text);

    /// <summary>
    /// The forwards of <paramref name="all"/> that <paramref name="selectors"/> name, each once, in the order of
    /// the selectors; a literal name that matches none is PortForwardNotFound.
    /// </summary>
    /// <exception cref="NetfilterException">PortForwardNotFound, InvalidNamePattern.</exception>
    public static List<PortForward> SelectAll(IEnumerable<PortForward> all, IEnumerable<string?> selectors, string? networkNamespace)
    {
        var forwards = all.ToList();
        var selected = new List<PortForward>();
        foreach (var selector in selectors.Select(Parse))
        {
            var hits = forwards.Where(f => selector.Matches(f.Name)).ToList();
            if (hits.Count == 0 && selector.IsLiteral)
            {
                throw PortForwardNames.NotFound(selector.Text, networkNamespace);
            }

            selected.AddRange(hits.Where(h => !selected.Contains(h)));
        }

        return selected;
    }
}
