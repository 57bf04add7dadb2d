using System.Text;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// The iptables section of the boot-set script (<see cref="BootScript"/> writes the header and the main part). It needs
/// the iptables tools only (flock and sysctl when present).
/// <para>
/// Format: shell variables per family and table (<c>_HOOKS</c>: "BUILTIN CHAIN" lines of the hooked chains the saved
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
    /// <summary>
    /// The iptables section of the set's boot script (<see cref="BootScript"/>): the data of its iptables forwards and
    /// the functions that restore and remove them (<c>psnf_iptables start|stop</c>). <c>psnf_saved</c> matches every
    /// saved name, so a live iptables copy of a forward saved for another backend is removed with the family's rules.
    /// </summary>
    public static string Section(BootSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append('\n');
        var forwards = set.ForBackend(BackendCatalog.Iptables);

        Line(BootScript.Assign("PSNF_TABLES", string.Join(' ', RuleLayout.Tables)));
        Line("# The saved forwards by family; per table the hooked chains they need (BUILTIN CHAIN), their dispatch");
        Line("# paths (PARENT CHILD SPEC, parents first) and their rules, in iptables-restore syntax.");
        var mirrored = set.ForBackend(BackendCatalog.Nftables);
        foreach (var family in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var tag = family == IpFamily.IPv4 ? "IPV4" : "IPV6";
            var defs = forwards.Where(f => f.Family == family).ToList();
            var own = defs.SelectMany(RuleLayout.Render).ToList();
            Data(tag, defs.Select(d => d.Name), own);

            // The nftables forwards' FORWARD accepts (IptablesForwardMirror): the same data with them added, used
            // where iptables' filter FORWARD drops (psnf_iptables).
            var nft = mirrored.Where(f => f.Family == family).ToList();
            Line(BootScript.Assign($"PSNF_{tag}_MIRRORS", string.Join(' ', nft.Select(d => d.Name))));
            if (nft.Count > 0)
            {
                Data(tag + "M", defs.Concat(nft).OrderBy(d => d.Name, StringComparer.Ordinal).Select(d => d.Name), own.Concat(nft.Select(d => RuleLayout.RenderForwardMirror(d))).ToList());
            }
        }

        void Data(string tag, IEnumerable<string> names, IReadOnlyList<RenderedRule> rules)
        {
            Line(BootScript.Assign($"PSNF_{tag}_NAMES", string.Join(' ', names)));
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

                Line(BootScript.Assign($"PSNF_{tag}_{table}_HOOKS", string.Join('\n', hooks)));
                Line(BootScript.Assign($"PSNF_{tag}_{table}_TREE", string.Join('\n', tree)));
                Line(BootScript.Assign($"PSNF_{tag}_{table}_RULES", string.Join('\n', inTable.Select(r => $"-A {r.Chain} {r.Spec}"))));
            }
        }

        Line(string.Empty);
        Line("# True when the rule (an iptables-save line) is tagged with a saved forward's name.");
        Line("psnf_saved() {");
        Line("    case $1 in");
        // Every saved name: a live iptables copy of a forward saved for nftables goes with the family's rules, and
        // the FORWARD accepts of the nftables forwards are theirs.
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
        return sb.ToString();
    }
}
