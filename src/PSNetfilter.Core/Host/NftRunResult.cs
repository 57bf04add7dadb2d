using System.Text.RegularExpressions;

namespace PSNetfilter.Core.Host;

/// <summary>
/// What one nft run gave, the same from libnftables and from the nft executable: whether nft accepted it, what it
/// printed (a listing; nothing for a script that only changes), and its error text (with the script line it names).
/// </summary>
public sealed partial record NftRunResult(bool Success, string Output, string Error)
{
    /// <summary>The command as it shows in errors: the nft process's command line, or the libnftables call.</summary>
    public string Command { get; init; } = "nft";

    /// <summary>The process's exit code; for libnftables 0 or 1, as nft exits.</summary>
    public int ExitCode { get; init; }

    /// <summary>
    /// The script line nft refused, 1-based, from its error text ("/dev/stdin:4:19-23: Error: ..." from a process,
    /// "&lt;cmdline&gt;:4:..." in-process): the first one it names. Null when nft named none.
    /// </summary>
    public int? FailedLine => FailedLineOf(Error);

    /// <summary>
    /// Returns the result when nft accepted the input; otherwise throws the failure both paths share: a
    /// <see cref="CommandFailedException"/> with nft's error text, the failed line and its text in <paramref name="input"/>.
    /// </summary>
    /// <exception cref="CommandFailedException">nft refused the input; nothing of it was applied.</exception>
    /// <param name="owners">Who wrote each line of <paramref name="input"/> (0-based): the refused line's owner becomes the failure's target.</param>
    public NftRunResult EnsureSuccess(string input, IReadOnlyList<string?>? owners = null)
    {
        if (Success)
        {
            return this;
        }

        var line = FailedLine;
        var lines = input.Split('\n');
        var text = line is { } n && n <= lines.Length ? lines[n - 1].TrimEnd('\r') : null;
        var owner = line is { } k && owners is not null && k <= owners.Count ? owners[k - 1] : null;
        throw new CommandFailedException(Command, ExitCode == 0 ? 1 : ExitCode, Error, line, text, owner, program: "nft");
    }

    /// <summary>The first line number of an nft error location ("SOURCE:LINE:COLUMN[-END]: Error:"), or null.</summary>
    internal static int? FailedLineOf(string error)
    {
        var m = LocationRegex().Match(error);
        return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    /// <summary>nft's error text without the name of its input ("/dev/stdin", "&lt;cmdline&gt;"): the same on both paths.</summary>
    public string ErrorWithoutSource => WithoutSource(Error);

    /// <summary>An nft error text with "line N:COLUMNS: Error:" for each "SOURCE:N:COLUMNS: Error:".</summary>
    public static string WithoutSource(string error) =>
        LocationRegex().Replace(error, m => $"line {m.Groups[1].Value}:{m.Groups[2].Value}: Error:");

    [GeneratedRegex(@"^[^\n:]*:(\d+):(\d+(?:-\d+)?): Error:", RegexOptions.Multiline)]
    private static partial Regex LocationRegex();
}
