using System.Text.RegularExpressions;

namespace PSNetfilter;

/// <summary>
/// The one rule for a network namespace name, as <c>ip netns</c> accepts it: 1-255 characters from letters,
/// digits and <c>._@+-</c>, not starting with a punctuation character, and not <c>.</c> or <c>..</c>. The name
/// becomes a path under /run/netns, a lock file name, part of a unit name and a word of ExecStart=, so it is
/// anchored with <c>\z</c> (<c>$</c> would let a trailing newline through). Null means the host's own
/// namespace; an empty or blank name is refused, never taken as the host.
/// </summary>
public static partial class NetworkNamespaceName
{
    /// <summary>True for a name the module accepts.</summary>
    public static bool IsValid(string? name) => name is not null and not "." and not ".." && NameRegex().IsMatch(name);

    /// <summary>
    /// <paramref name="name"/> itself when it is valid, null for null (the host's namespace).
    /// </summary>
    /// <exception cref="NetfilterException">InvalidNetworkNamespace, for an empty, blank or malformed name.</exception>
    public static string? Check(string? name)
    {
        if (name is null || IsValid(name))
        {
            return name;
        }

        string reason;
        if (string.IsNullOrWhiteSpace(name))
        {
            reason = " An empty or blank namespace is not the host's: to act on the host's own network namespace, leave -NetworkNamespace out (for piped input: leave the column or property out; only a forward from Get-PortForward carries $null for the host).";
        }
        else if (name.Contains('/'))
        {
            reason = " It looks like a path: give the name as 'ip netns list' shows it.";
        }
        else
        {
            reason = " Use 1-255 characters from letters, digits, '.', '_', '@', '+' and '-', starting with a letter, a digit or '_' (no spaces, no control characters).";
        }

        throw new NetfilterException(
            "InvalidNetworkNamespace",
            FailureKind.InvalidArgument,
            $"'{PortForwardDefinition.Printable(name)}' is not a network namespace name.{reason}",
            name);
    }

    [GeneratedRegex(@"\A[A-Za-z0-9_][A-Za-z0-9._@+-]{0,254}\z", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();
}
