using System.Text.RegularExpressions;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Names of the persistence unit and the paths derived from them. A unit name is checked against the
/// systemd rules (and stricter ones where a name also becomes a directory and part of ExecStart=), so
/// nothing the user types reaches a unit file or a path unchecked.
/// </summary>
public static partial class ServiceNames
{
    public const string Suffix = ".service";

    /// <summary>The default unit, for the host's own namespace.</summary>
    public const string DefaultUnitName = "psnetfilter" + Suffix;

    /// <summary>systemd's limit on a unit name (UNIT_NAME_MAX minus the terminating NUL).</summary>
    public const int MaxUnitNameLength = 255;

    /// <summary>What a unit's re-apply helper adds to its base name: <c>psnetfilter-reapply.service</c>.</summary>
    public const string ReapplySuffix = "-reapply";

    /// <summary>The longest base name: its helper's name must fit systemd's limit too.</summary>
    public const int MaxBaseNameLength = MaxUnitNameLength - 8 - 8; // ".service" and ReapplySuffix

    private static readonly string[] OtherUnitTypes =
    {
        ".socket", ".target", ".timer", ".path", ".mount", ".automount", ".swap", ".slice", ".scope", ".device",
    };

    /// <summary>
    /// The unit name to use: <paramref name="name"/> (".service" appended when missing) or the default for
    /// the namespace: <c>psnetfilter.service</c>, <c>psnetfilter-NS.service</c>.
    /// </summary>
    /// <exception cref="NetfilterException">InvalidUnitName.</exception>
    public static string Resolve(string? name, string? networkNamespace)
    {
        if (string.IsNullOrEmpty(name))
        {
            var unit = networkNamespace is null ? DefaultUnitName : "psnetfilter-" + networkNamespace + Suffix;
            if (!IsValid(unit))
            {
                throw Invalid(unit, $"The default unit name '{PortForwardDefinition.Printable(unit)}' for network namespace '{PortForwardDefinition.Printable(networkNamespace ?? string.Empty)}' is not a valid systemd unit name. Give one with -Name, for example -Name psnetfilter-ns1.");
            }

            return unit;
        }

        foreach (var other in OtherUnitTypes)
        {
            if (name.EndsWith(other, StringComparison.Ordinal))
            {
                throw Invalid(name, $"'{PortForwardDefinition.Printable(name)}' names a {other[1..]} unit; the port forward service is a .service unit, for example 'psnetfilter.service'.");
            }
        }

        var full = name.EndsWith(Suffix, StringComparison.Ordinal) ? name : name + Suffix;
        if (!IsValid(full))
        {
            throw Invalid(name, $"'{PortForwardDefinition.Printable(name)}' is not a valid unit name. Use 1-{MaxBaseNameLength} characters from letters, digits, '_', '.' and '-' (not starting with '.' or '-'; no '@' templates, and no ':', which systemd accepts but its tools do not handle well), optionally followed by '.service'. A name ending in '{ReapplySuffix}' is taken: it names the re-apply helper of another unit.");
        }

        return full;
    }

    /// <summary>True for <c>PREFIX.service</c> with a prefix systemd accepts and this module can use as a directory name.</summary>
    public static bool IsValid(string? unitName) =>
        unitName is not null
        && unitName.Length <= MaxBaseNameLength + Suffix.Length
        && unitName.EndsWith(Suffix, StringComparison.Ordinal)
        && PrefixRegex().IsMatch(unitName[..^Suffix.Length])
        && !unitName[..^Suffix.Length].EndsWith(ReapplySuffix, StringComparison.Ordinal);

    /// <summary><c>web.service</c> -> <c>web-reapply.service</c>: the unit's re-apply helper.</summary>
    public static string ReapplyName(string unitName) => BaseName(unitName) + ReapplySuffix + Suffix;

    /// <summary><c>web.service</c> -> <c>web</c>: the name of the unit's folder under /etc/psnetfilter.</summary>
    public static string BaseName(string unitName) =>
        unitName.EndsWith(Suffix, StringComparison.Ordinal) ? unitName[..^Suffix.Length] : unitName;

    private static NetfilterException Invalid(string name, string message) =>
        new("InvalidUnitName", FailureKind.InvalidArgument, message, name);

    [GeneratedRegex(@"\A[A-Za-z0-9_][A-Za-z0-9_.\-]*\z")]
    private static partial Regex PrefixRegex();
}
