namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Reads the header of boot-set scripts (<c># psnf-...:</c> lines, up to the first line that is not a
/// comment), and answers which forwards are persisted for a namespace.
/// </summary>
public static class BootSetReader
{
    public const string VersionKey = "psnf-boot-set:";
    public const string UnitKey = "psnf-unit:";
    public const string NamespaceKey = "psnf-namespace:";
    public const string ForwardKey = "psnf-forward:";

    /// <summary><c># psnf-backend: NAME BACKEND</c>, for a forward restored into another backend than the default.</summary>
    public const string BackendKey = "psnf-backend:";

    /// <summary><c># psnf-definition: JSON</c>: a saved forward in full, so that the set can be written again (a migration).</summary>
    public const string DefinitionKey = "psnf-definition:";

    /// <summary>Parses a script's header; null when it is not a boot set this version can read.</summary>
    public static BootSetInfo? Parse(string text, string scriptPath = "")
    {
        ArgumentNullException.ThrowIfNull(text);
        int? version = null;
        string? unit = null;
        string? ns = null;
        var nsSeen = false;
        var names = new List<string>();
        var backends = new Dictionary<string, string>(PortForwardNames.Comparer);
        var definitions = new Dictionary<string, PortForwardDefinition>(PortForwardNames.Comparer);
        var lines = text.Split('\n');
        foreach (var raw in lines)
        {
            if (!raw.StartsWith('#'))
            {
                break;
            }

            var line = raw.TrimStart('#').Trim();
            if (Value(line, VersionKey) is { } v)
            {
                version = int.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : -1;
            }
            else if (Value(line, UnitKey) is { } u)
            {
                unit = u;
            }
            else if (Value(line, NamespaceKey) is { } s)
            {
                ns = s == "-" ? null : s;
                nsSeen = true;
            }
            else if (Value(line, ForwardKey) is { } f)
            {
                var name = f.Split(' ', 2)[0];
                if (!PortForwardDefinition.IsValidName(name))
                {
                    return null;
                }

                names.Add(name);
            }
            else if (Value(line, BackendKey) is { } b && b.Split(' ') is [var forward, var backend])
            {
                backends[forward] = backend;
            }

        }

        if (version != BootSet.FormatVersion || unit is null || !ServiceNames.IsValid(unit) || !nsSeen)
        {
            return null;
        }

        // The definitions follow the script's last command (a header of thousands of them would be read by every
        // Get-PortForward that asks which forwards are persisted).
        foreach (var raw in lines)
        {
            if (raw.StartsWith("# " + DefinitionKey, StringComparison.Ordinal) && Engine.IntentRecord.FromHeaderLine(raw[(DefinitionKey.Length + 2)..].Trim()) is { } definition)
            {
                definitions[definition.Name] = definition;
            }
        }

        return new BootSetInfo(version.Value, unit, ns, names, scriptPath)
        {
            Backends = names.ToDictionary(n => n, n => backends.GetValueOrDefault(n, Backends.BackendCatalog.Default), PortForwardNames.Comparer),
            Definitions = definitions,
        };
    }

    /// <summary>
    /// The boot sets installed under <paramref name="root"/>: every /etc/psnetfilter/*/apply.sh that parses and
    /// whose unit file exists. Unreadable files are skipped.
    /// </summary>
    public static IReadOnlyList<BootSetInfo> FindInstalled(string root)
    {
        var result = new List<BootSetInfo>();
        var normalized = ServicePaths.NormalizeRoot(root);
        var configRoot = new ServicePaths(normalized, ServiceNames.DefaultUnitName).OnRoot(ServicePaths.ConfigRoot);
        if (!Directory.Exists(configRoot))
        {
            return result;
        }

        IEnumerable<string> dirs;
        try
        {
            dirs = Directory.EnumerateDirectories(configRoot).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return result;
        }

        foreach (var dir in dirs)
        {
            var script = Path.Combine(dir, ServicePaths.ScriptName);
            try
            {
                if (!File.Exists(script))
                {
                    continue;
                }

                var info = Parse(ReadHead(script), script);
                if (info is null || ServiceNames.BaseName(info.UnitName) != Path.GetFileName(dir))
                {
                    continue;
                }

                var paths = new ServicePaths(normalized, info.UnitName);
                if (File.Exists(paths.OnRoot(paths.UnitFile)))
                {
                    result.Add(info);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // not readable: not a boot set we can report
            }
        }

        return result;
    }

    /// <summary>The names of the forwards persisted for <paramref name="networkNamespace"/> (null: the host's).</summary>
    public static HashSet<string> PersistedNames(string root, string? networkNamespace)
    {
        var ns = string.IsNullOrEmpty(networkNamespace) ? null : networkNamespace;
        return FindInstalled(root)
            .Where(i => string.Equals(i.NetworkNamespace, ns, StringComparison.Ordinal))
            .SelectMany(i => i.ForwardNames)
            .ToHashSet(PortForwardNames.Comparer);
    }

    private static string? Value(string line, string key) =>
        line.StartsWith(key, StringComparison.Ordinal) ? line[key.Length..].Trim() : null;

    /// <summary>The header only: a boot set of thousands of forwards need not be read whole.</summary>
    private static string ReadHead(string path)
    {
        using var reader = new StreamReader(path);
        var sb = new System.Text.StringBuilder();
        while (reader.ReadLine() is { } line)
        {
            if (!line.StartsWith('#'))
            {
                break;
            }

            sb.Append(line).Append('\n');
        }

        return sb.ToString();
    }
}
