using System.Net;
using PSNetfilter.Core.Diagnostics;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// ForeignDnat: another program's DNAT rule in nat (Docker's published ports, kube-proxy's services) matches the
/// forward's protocol and port; an error when a packet reaches it before the jump to PSNF-PREROUTING.
/// </summary>
public static class ForeignDnatCheck
{
    private static readonly string[] ForeignOwners = { "DOCKER", "KUBE-", "CNI-", "LIBVIRT", "cali-", "CILIUM" };

    public static IEnumerable<PortForwardFinding> Evaluate(PortForward f, Ruleset ruleset)
    {
        var findings = new List<PortForwardFinding>();
        var nat = ruleset.Table("nat");
        var proto = RuleLayout.ProtoName(f.Protocol);
        foreach (var rule in nat.Rules)
        {
            if (rule.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal) || !rule.Spec.Contains("-j DNAT", StringComparison.Ordinal))
            {
                continue;
            }

            var tokens = RuleTokenizer.Split(rule.Spec);
            var p = ValueAfter(tokens, "-p");
            var dport = ValueAfter(tokens, "--dport");
            if (p != proto || dport is null || !Covers(dport, f.ExternalPort, f.ExternalPortEnd))
            {
                continue;
            }

            var dst = ValueAfter(tokens, "-d");
            if (dst is not null && f.ExternalAddress is not null && !SameHost(dst, f.ExternalAddress))
            {
                continue;
            }

            var owner = ForeignOwners.FirstOrDefault(o => rule.Chain.StartsWith(o, StringComparison.Ordinal)) ?? rule.Chain;
            var wins = ReachedBeforeJump(nat, rule);
            findings.Add(new(f.Name, wins ? FindingSeverity.Error : FindingSeverity.Warning, "ForeignDnat",
                $"{owner} (chain {rule.Chain}) also DNATs {proto} port {dport}: {rule.Spec}",
                wins
                    ? "Its rule is reached before PSNetfilter's jump in nat/PREROUTING, so it takes the connections and this forward never sees them."
                    : "PSNetfilter's jump comes first in nat/PREROUTING, so this forward wins; the other program's published port does not work for the same traffic.",
                $"Use another external port, or stop {owner} from publishing port {dport}."));
        }

        return findings;
    }

    /// <summary>
    /// True when a packet in nat/PREROUTING can reach <paramref name="foreign"/> before the jump to
    /// PSNF-PREROUTING (or when that jump is missing): the foreign rule then takes the connection first.
    /// </summary>
    private static bool ReachedBeforeJump(TableDump nat, RuleLine foreign)
    {
        var pre = nat.Rules.Where(r => r.Chain == "PREROUTING").ToList();
        var jump = pre.FirstOrDefault(r => r.Spec == RuleLayout.PreRouting.JumpSpec);
        if (jump is null)
        {
            return true;
        }

        if (foreign.Chain == "PREROUTING")
        {
            return foreign.Position < jump.Position;
        }

        // Rules reachable from the PREROUTING rules that come before the jump, following jumps transitively.
        return nat.RulesReachedFrom(pre.Where(r => r.Position < jump.Position)).Any(r => r.Chain == foreign.Chain);
    }

    private static string? ValueAfter(List<string> tokens, string option)
    {
        var i = tokens.IndexOf(option);
        return i >= 0 && i + 1 < tokens.Count && (i == 0 || tokens[i - 1] != "!") ? tokens[i + 1] : null;
    }

    private static bool Covers(string dport, int first, int last)
    {
        var parts = dport.Split(':');
        if (!int.TryParse(parts[0], out var lo))
        {
            return false;
        }

        var hi = parts.Length > 1 && int.TryParse(parts[1], out var h) ? h : lo;
        return lo <= last && first <= hi;
    }

    private static bool SameHost(string spec, IPAddress address)
    {
        var slash = spec.IndexOf('/');
        var host = slash < 0 ? spec : spec[..slash];
        return IPAddress.TryParse(host, out var a) && a.Equals(address);
    }
}
