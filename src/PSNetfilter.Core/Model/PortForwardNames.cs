using System.Text;

namespace PSNetfilter;

/// <summary>
/// The one name rule: forward names are case-insensitive (ordinal, ignoring case) and unique in a namespace.
/// Creating, selecting (Get, Remove, Test, Install), the boot set and its restore script all compare names
/// through this class, and a name that matches nothing is reported by <see cref="NotFound"/>.
/// </summary>
public static class PortForwardNames
{
    /// <summary>Compares forward names: <c>web</c>, <c>Web</c> and <c>WEB</c> are one name.</summary>
    public static StringComparer Comparer => StringComparer.OrdinalIgnoreCase;

    public static bool Same(string? a, string? b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);

    /// <summary>The one not-found error of every cmdlet that selects forwards by name.</summary>
    public static NetfilterException NotFound(string name, string? networkNamespace) => new(
        "PortForwardNotFound",
        FailureKind.ObjectNotFound,
        $"No port forward named '{PortForwardDefinition.Printable(name)}' exists {(networkNamespace is null ? "in the host's network namespace" : $"in network namespace '{networkNamespace}'")}. Get-PortForward lists them.",
        name);

    /// <summary>
    /// A /bin/sh case-pattern (glob) that matches <paramref name="name"/> ignoring case: each letter becomes a
    /// bracket of both cases (<c>[wW][eE][bB]</c>). Names are [A-Za-z0-9._-], none of them a glob character.
    /// </summary>
    public static string ShellGlob(string name)
    {
        PortForwardDefinition.ValidateName(name);
        var glob = new StringBuilder(name.Length * 4);
        foreach (var c in name)
        {
            if (char.IsAsciiLetter(c))
            {
                glob.Append('[').Append(char.ToLowerInvariant(c)).Append(char.ToUpperInvariant(c)).Append(']');
            }
            else
            {
                glob.Append(c);
            }
        }

        return glob.ToString();
    }
}
