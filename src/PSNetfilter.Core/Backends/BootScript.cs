using System.Text;
using System.Text.RegularExpressions;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Backends.Nftables;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Backends;

/// <summary>
/// The boot set's files: one self-contained POSIX sh script (<c>apply.sh</c>) that restores (<c>start</c>,
/// <c>reload</c>) and removes (<c>stop</c>) exactly the saved forwards, and, when the set has forwards of the nftables
/// backend, the nft file it loads (<c>forwards.nft</c>). The script is a header of <c># psnf-...:</c> lines (read back
/// by <see cref="BootSetReader"/>), the section of each backend (<see cref="RestoreScriptGenerator.Section"/>,
/// <see cref="NftBootScript.Section"/>: data and the functions <c>psnf_iptables</c> and <c>psnf_nft</c>) and a fixed
/// main part: under the module's namespace flock, start runs both sections, stop both removals. A section
/// without forwards does nothing and runs no tool. Being one file (two with the nft file, renamed into place
/// before the script), a new set replaces the old one with a rename.
/// </summary>
public static partial class BootScript
{
    /// <summary>The files of the set: target path and text (LF line ends, ASCII only), the nft file first.</summary>
    public static IReadOnlyList<(string Path, string Text)> Files(BootSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var paths = new ServicePaths("/", set.UnitName);
        var files = new List<(string, string)>();
        var nft = set.ForBackend(BackendCatalog.Nftables);
        if (nft.Count > 0)
        {
            files.Add((paths.NftFile, Ascii(NftBootScript.File(set.UnitName, nft))));
        }

        files.Add((paths.ScriptFile, Generate(set)));
        return files;
    }

    /// <summary>The script text (LF line ends, ASCII only).</summary>
    public static string Generate(BootSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append('\n');

        var paths = new ServicePaths("/", set.UnitName);
        var script = paths.ScriptFile;
        Line("#!/bin/sh");
        Line("# PSNetfilter boot set, written by Install-PortForwardService: do not edit, install again to change it.");
        Line("#   sh " + script + " start   restores exactly the forwards below (one copy each)");
        Line("#   sh " + script + " stop    removes exactly them");
        Line("# Other forwards and foreign rules (Docker, libvirt, kube-proxy...) are never touched.");
        Line("#");
        Line($"# {BootSetReader.VersionKey} {BootSet.FormatVersion}");
        Line($"# {BootSetReader.UnitKey} {set.UnitName}");
        Line($"# {BootSetReader.NamespaceKey} {set.NetworkNamespace ?? "-"}");
        foreach (var f in set.Forwards)
        {
            Line($"# {BootSetReader.ForwardKey} {Describe(f)}");
        }

        foreach (var f in set.Forwards.Where(f => set.BackendOf(f) != BackendCatalog.Default))
        {
            Line($"# {BootSetReader.BackendKey} {f.Name} {set.BackendOf(f)}");
        }


        Line(string.Empty);
        Line("set -u -f");
        Line("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        Line("LC_ALL=C");
        Line("export PATH LC_ALL");
        Line(string.Empty);
        Line(Assign("PSNF_UNIT", set.UnitName));
        Line(Assign("PSNF_LOCK", set.LockPath));
        Line(Assign("PSNF_KEEP", set.KeepFlagPath));
        Line(string.Empty);
        sb.Append(RestoreScriptGenerator.Section(set));
        sb.Append(NftBootScript.Section(set.ForBackend(BackendCatalog.Nftables), paths.NftFile));
        sb.Append(Body);

        // After the last command, so that the shell never reads them: the saved definitions (BootSetReader.ReadDefinitions).
        Line("exit $?");
        Line("# The saved definitions, for writing the set again (a move between backends): base64 of their JSON.");
        foreach (var f in set.Forwards)
        {
            Line($"# {BootSetReader.DefinitionKey} {Engine.IntentRecord.ToHeaderLine(f)}");
        }

        return Ascii(sb.ToString());
    }

    /// <summary>
    /// One header line per forward: <c>NAME FAMILY</c> and the forward as PortForward.ToString() shows it
    /// (informational; anything outside printable ASCII is replaced by '?', so free text cannot break the header).
    /// </summary>
    public static string Describe(PortForwardDefinition d)
    {
        var shown = new PortForward(d).ToString();
        if (shown.StartsWith(d.Name + " ", StringComparison.Ordinal))
        {
            shown = shown[(d.Name.Length + 1)..];
        }

        var safe = new string(shown.Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());
        return $"{d.Name} {d.Family} {safe}";
    }

    /// <summary><c>NAME='value'</c> for both backends' sections; the value is from a closed alphabet, a quote in it is a bug.</summary>
    internal static string Assign(string variable, string value)
    {
        if (value.Contains('\''))
        {
            throw new InvalidOperationException($"Refusing to quote a value with a single quote for {variable}.");
        }

        return $"{variable}='{value}'";
    }

    private static string Ascii(string text)
    {
        if (!AsciiText().IsMatch(text))
        {
            // Unreachable for validated input: a guard, not an escape.
            throw new InvalidOperationException("Refusing to write a boot-set file with characters outside printable ASCII.");
        }

        return text;
    }

    [GeneratedRegex("^[\\x20-\\x7e\\n\\t]*$")]
    private static partial Regex AsciiText();
}
