using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Core.Diagnostics;

public enum FindingSeverity
{
    Info,
    Warning,
    Error,
}

/// <summary>One problem Test-PortForward found: what, why, and the fix.</summary>
public sealed record PortForwardFinding(string? Forward, FindingSeverity Severity, string Check, string What, string Why, string Fix)
{
    public string? NetworkNamespace { get; init; }

    /// <summary>For findings about another table: the table ("inet filter", "ip libvirt_network").</summary>
    public string? Table { get; init; }

    /// <summary>For findings about a chain: its name.</summary>
    public string? Chain { get; init; }

    /// <summary>The program that owns the table or rule, where recognisable (firewalld, libvirt, Docker, ...).</summary>
    public string? Owner { get; init; }
}

/// <summary>What the checks look at, gathered once per namespace.</summary>
public sealed class DiagnosticsInput
{
    public required ForwardSnapshot Snapshot { get; init; }

    public required IReadOnlyList<PortForward> Forwards { get; init; }

    public required IReadOnlyDictionary<IpFamily, bool> ForwardingEnabled { get; init; }

    /// <summary>Rules the other backend (legacy when the module uses nft, or the reverse) holds, per family.</summary>
    public required IReadOnlyDictionary<IpFamily, int> OtherBackendRules { get; init; }

    public string OtherBackendName { get; init; } = "iptables-legacy";

    /// <summary>TCP connect results from inside the namespace to each forward's internal endpoint (absent: not tested).</summary>
    public IReadOnlyDictionary<string, bool> Reachable { get; init; } = new Dictionary<string, bool>();

    /// <summary>Per forward: connections that never saw a reply (conntrack [UNREPLIED]); absent when unknown.</summary>
    public IReadOnlyDictionary<string, int> Unreplied { get; init; } = new Dictionary<string, int>();

    /// <summary>The whole nftables ruleset of the namespace (<c>nft -j list ruleset</c>); null when nft is not installed.</summary>
    public NftJson.NftRuleset? Nftables { get; init; }

    /// <summary>Per internal address: the interface the gateway routes it through, when known.</summary>
    public IReadOnlyDictionary<IPAddress, string> RouteDevices { get; init; } = new Dictionary<IPAddress, string>();
    /// <summary>The gateway's interfaces and addresses (<see cref="ForwardChecks"/>); null when unknown.</summary>
    public GatewayInventory? Gateway { get; init; }
}

/// <summary>Pure checks over a gathered <see cref="DiagnosticsInput"/>; each finding says what to do.</summary>
public static class PortForwardDiagnostics
{
    private static readonly string[] ForeignOwners = { "DOCKER", "KUBE-", "CNI-", "LIBVIRT", "cali-", "CILIUM" };

    public static IReadOnlyList<PortForwardFinding> Evaluate(DiagnosticsInput input)
    {
        var findings = new List<PortForwardFinding>();
        foreach (var family in input.Forwards.Select(f => f.Family).Distinct())
        {
            if (input.ForwardingEnabled.TryGetValue(family, out var on) && !on)
            {
                findings.Add(new(null, FindingSeverity.Error, "ForwardingDisabled",
                    $"{Host.NetfilterHost.ForwardingKey(family)} is 0.",
                    "The kernel does not route packets between interfaces, so DNATed connections are dropped.",
                    $"sysctl -w {Host.NetfilterHost.ForwardingKey(family)}=1 (New-PortForward does this; Install-PortForwardService persists it)."));
            }

            if (input.Snapshot.Rulesets.TryGetValue(family, out var familyRules) && ForwardJumpCheck.Evaluate(familyRules) is { } jump)
            {
                findings.Add(jump);
            }

            if (input.OtherBackendRules.TryGetValue(family, out var other) && other > 0)
            {
                findings.Add(new(null, FindingSeverity.Warning, "BothBackends",
                    $"{input.OtherBackendName} also holds {other} rule(s) for {family}.",
                    "Rules of iptables-nft and iptables-legacy both apply to packets; a DROP or DNAT in the other backend can override the forward and does not show in this backend's listing.",
                    $"Inspect them with {input.OtherBackendName}-save and move them to one backend."));
            }
        }

        foreach (var f in input.Forwards)
        {
            var ruleset = input.Snapshot.Rulesets[f.Family];
            if (!f.IsComplete)
            {
                findings.Add(new(f.Name, f.MissingRules.Count > 0 || f.UnreachableRules.Count > 0 ? FindingSeverity.Error : FindingSeverity.Warning, "Drift",
                    $"Forward '{f.Name}' is {f.Status}.",
                    "Its kernel rules were changed outside PSNetfilter (deleted or added by hand, or by a firewall reload).",
                    f.DefinitionPartial
                        ? $"New-PortForward -Name '{f.Name}' -Force{Ns(f)} with its full definition (source allow-list, interface, description) restores it whole."
                        : $"Get-PortForward -Name '{f.Name}'{Ns(f)} | New-PortForward -Force{Ns(f)} restores it whole."));
            }

            var filter = ruleset.Table("filter");
            var policy = filter.GetChain("FORWARD")?.Policy;
            var hasJump = ChangePlanner.HasJump(filter, RuleLayout.Forward);
            if (policy is "DROP" or "REJECT" && (!hasJump || f.MissingRules.Contains(RuleRole.Forward) || f.UnreachableRules.Contains(RuleRole.Forward)))
            {
                findings.Add(new(f.Name, FindingSeverity.Error, "ForwardPolicyDrop",
                    "The FORWARD policy is DROP and nothing accepts this forward's traffic.",
                    hasJump ? "The forward's FORWARD accept rule is missing." : "The jump from FORWARD to PSNF-FORWARD is missing.",
                    $"New-PortForward -Force for '{f.Name}' puts the accept rule and the jump back."));
            }

            ForeignDnat(f, ruleset, findings);
            if (input.Nftables is { } nft)
            {
                findings.AddRange(ForeignTableCheck.Evaluate(f, nft, input.RouteDevices.GetValueOrDefault(f.InternalAddress), input.Gateway?.DeviceOf(f.ExternalAddress)));
            }

            if (input.Gateway is not null)
            {
                findings.AddRange(ForwardChecks.Check(f.Definition, input.Gateway));
            }

            if (input.Reachable.TryGetValue(f.Name, out var reachable) && !reachable)
            {
                findings.Add(new(f.Name, FindingSeverity.Error, "InternalUnreachable",
                    $"Nothing accepted a TCP connection to {f.InternalEndpoint} from the gateway.",
                    "The internal host is down, nothing listens on the port, a firewall on it refuses, or the gateway has no route to it.",
                    $"Check the service on {f.InternalAddress} and the route to it (ip route get {f.InternalAddress})."));
            }

            if (f.SnatMode == SnatMode.None && input.Unreplied.TryGetValue(f.Name, out var unreplied) && unreplied > 0)
            {
                findings.Add(new(f.Name, FindingSeverity.Error, "NoReturnRoute",
                    $"{unreplied} connection(s) through '{f.Name}' never got a reply.",
                    "With -NoSnat the internal host sees the client's address and must send replies back through this gateway; it does not (no route via the gateway, or a firewall on it).",
                    $"Route the clients' networks via the gateway on {f.InternalAddress}, or use source NAT (New-PortForward -Force without -NoSnat)."));
            }
        }

        return findings;
    }

    private static void ForeignDnat(PortForward f, Ruleset ruleset, List<PortForwardFinding> findings)
    {
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

    private static string Ns(PortForward f) => f.NetworkNamespace is null ? string.Empty : $" -NetworkNamespace {f.NetworkNamespace}";
}
