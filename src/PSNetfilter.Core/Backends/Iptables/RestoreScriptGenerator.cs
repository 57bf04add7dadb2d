using System.Text;
using System.Text.RegularExpressions;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// The boot-set script: one self-contained POSIX sh file that holds the saved rules and the code to
/// restore (<c>start</c>) and remove (<c>stop</c>) exactly them. It needs /bin/sh and the iptables tools
/// only (flock and sysctl when present). Being one file, a new set replaces the old one with one rename.
/// <para>
/// Format: a header of <c># psnf-...:</c> lines (read back by <see cref="BootSetReader"/>); a data section of
/// shell variables per family and table (<c>_HOOKS</c>: "BUILTIN CHAIN" lines of the hooked chains the saved
/// rules need; <c>_TREE</c>: "PARENT CHILD SPEC" lines of their dispatch paths, parents first; <c>_RULES</c>:
/// the saved rules as iptables-restore <c>-A</c> lines), in single quotes, as every rendered token is from a
/// closed alphabet without quotes or spaces; a <c>psnf_saved</c> function whose case patterns match the tags
/// of the saved names ignoring case, as names compare everywhere (glob, not regex: each letter is a bracket of
/// both cases, and the name alphabet [A-Za-z0-9._-] has no pattern characters, so '.' is literal); and a fixed body.
/// </para>
/// <para>
/// start, per family with saved forwards, under the module's namespace flock: one pass over
/// <c>iptables-save -t nat</c> and <c>-t filter</c>, then ONE <c>iptables-restore -w --noflush</c> that
/// declares a module chain only when it does not exist (so nothing live is flushed), inserts a missing hook
/// jump at position 1, appends a missing dispatch jump, deletes by position (highest first) every live rule
/// tagged with a saved name, wherever it is, and appends the saved rules. Then dispatch chains left empty are
/// removed with the jump that led to them (a few more small transactions, deepest first), and forwarding is
/// turned on. stop: the same deletes, then the same pruning, which also removes a hooked chain left empty
/// and its jump. Rules of other names, hand-made rules and foreign rules are never named.
/// </para>
/// </summary>
public static partial class RestoreScriptGenerator
{
    /// <summary>The script text (LF line ends, ASCII only).</summary>
    public static string Generate(BootSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append('\n');

        var script = new ServicePaths("/", set.UnitName).ScriptFile;
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
        Line(Assign("PSNF_TABLES", string.Join(' ', RuleLayout.Tables)));
        Line("# The saved forwards by family; per table the hooked chains they need (BUILTIN CHAIN), their dispatch");
        Line("# paths (PARENT CHILD SPEC, parents first) and their rules, in iptables-restore syntax.");
        foreach (var family in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var tag = family == IpFamily.IPv4 ? "IPV4" : "IPV6";
            var defs = set.ForFamily(family).ToList();
            Line(Assign($"PSNF_{tag}_NAMES", string.Join(' ', defs.Select(d => d.Name))));
            var rules = defs.SelectMany(RuleLayout.Render).ToList();
            foreach (var table in RuleLayout.Tables)
            {
                var inTable = rules.Where(r => r.Table == table).ToList();
                var hooks = RuleLayout.Hooks
                    .Where(h => h.Table == table && inTable.Any(r => r.Chain == h.Chain || (r.Path.Count > 0 && r.Path[0].Parent == h.Chain)))
                    .Select(h => $"{h.BuiltinChain} {h.Chain}");
                var tree = new List<string>();
                foreach (var step in inTable.SelectMany(r => r.Path))
                {
                    var stepLine = $"{step.Parent} {step.Chain} {step.Spec}";
                    if (!tree.Contains(stepLine))
                    {
                        tree.Add(stepLine);
                    }
                }

                Line(Assign($"PSNF_{tag}_{table}_HOOKS", string.Join('\n', hooks)));
                Line(Assign($"PSNF_{tag}_{table}_TREE", string.Join('\n', tree)));
                Line(Assign($"PSNF_{tag}_{table}_RULES", string.Join('\n', inTable.Select(r => $"-A {r.Chain} {r.Spec}"))));
            }
        }

        Line(string.Empty);
        Line("# True when the rule (an iptables-save line) is tagged with a saved forward's name.");
        Line("psnf_saved() {");
        Line("    case $1 in");
        foreach (var f in set.Forwards)
        {
            // The name ignoring case (PortForwardNames): a live 'Web' is the saved 'web', replaced or removed by it.
            var tag = ForwardTag.TagPrefix + PortForwardNames.ShellGlob(f.Name) + ":";
            Line($"        *'--comment \"'{tag}* | *'--comment '{tag}*) return 0 ;;");
        }

        Line("    esac");
        Line("    return 1");
        Line("}");
        Line(string.Empty);
        Line("# True for the module's hooked chains (jumped to from a built-in chain).");
        Line("psnf_hooked() {");
        Line("    case $1 in");
        Line("        " + string.Join(" | ", RuleLayout.Hooks.Select(h => h.Chain)) + ") return 0 ;;");
        Line("    esac");
        Line("    return 1");
        Line("}");
        Line(string.Empty);
        Line("# True for the jump from a built-in chain to the module's chain hooked there: psnf_hookjump BUILTIN CHAIN.");
        Line("psnf_hookjump() {");
        Line("    case \"$1>$2\" in");
        Line("        " + string.Join(" | ", RuleLayout.Hooks.Select(h => $"'{h.BuiltinChain}>{h.Chain}'")) + ") return 0 ;;");
        Line("    esac");
        Line("    return 1");
        Line("}");
        Line(string.Empty);
        Line("# True for the chains of the module's dispatch trees: its chains that are not hooked.");
        Line("psnf_dispatch() {");
        Line("    case $1 in");
        Line($"        {RuleLayout.ChainPrefix}*) psnf_hooked \"$1\" && return 1 || return 0 ;;");
        Line("    esac");
        Line("    return 1");
        Line("}");
        sb.Append(Body);
        var text = sb.ToString();
        if (!AsciiText().IsMatch(text))
        {
            // Unreachable for validated input: a guard, not an escape.
            throw new InvalidOperationException("Refusing to write a boot-set script with characters outside printable ASCII.");
        }

        return text;
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

    /// <summary><c>NAME='value'</c>; the value is from a closed alphabet, a quote in it is a bug.</summary>
    private static string Assign(string variable, string value)
    {
        if (value.Contains('\''))
        {
            throw new InvalidOperationException($"Refusing to quote a value with a single quote for {variable}.");
        }

        return $"{variable}='{value}'";
    }

    [GeneratedRegex("^[\\x20-\\x7e\\n]*$")]
    private static partial Regex AsciiText();
}
