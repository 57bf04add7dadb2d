using PSNetfilter.Core.NftJson;

namespace PSNetfilter.Core.Diagnostics;

/// <summary>
/// Finds the base chains of other nftables tables (firewalld, libvirt, Docker, a hand-written ruleset) that drop or
/// reject a forward's packets. Every base chain on a hook sees the packet, whatever another table accepted, so an
/// accept in PSNetfilter's rules does not help against a drop there. The packets are modelled per hook: the first
/// packet of a connection (before and after DNAT, by the chain's priority), and the internal host's reply.
/// </summary>
public static class ForeignTableCheck
{
    /// <summary>Priority of the DNAT hook (NF_IP_PRI_NAT_DST): chains below it see the packet before DNAT.</summary>
    private const int DnatPriority = -100;

    public const string CheckName = "ForeignTableDrop";

    /// <param name="routeDevice">The interface the gateway routes towards the forward's internal address, when known.</param>
    /// <param name="externalDevice">
    /// The interface that holds the forward's external address, when known: clients' packets are taken to arrive
    /// there unless -InInterface says otherwise.
    /// </param>
    public static IEnumerable<PortForwardFinding> Evaluate(PortForward f, NftRuleset ruleset, string? routeDevice, string? externalDevice = null)
    {
        var evaluator = new NftEvaluator(ruleset);
        var reported = new HashSet<NftChain>();
        foreach (var (hook, direction) in Probes(f))
        {
            var template = Packet(f, hook, direction, routeDevice, externalDevice, afterDnat: false);
            foreach (var chain in evaluator.BaseChains(template, t => !ruleset.IsForeign(t)))
            {
                if (reported.Contains(chain))
                {
                    continue;
                }

                var packet = direction == NftDirection.Original && (chain.Priority ?? 0) > DnatPriority
                    ? Packet(f, hook, direction, routeDevice, externalDevice, afterDnat: true)
                    : template;
                var verdict = evaluator.Evaluate(chain, packet);
                if (verdict.Outcome != NftOutcome.Drop)
                {
                    continue;
                }

                reported.Add(chain);
                yield return Finding(f, ruleset, packet, verdict);
            }
        }
    }

    /// <summary>Which program a table belongs to, by the names those programs give their tables.</summary>
    public static string Owner(NftTable table) => table.Name switch
    {
        "firewalld" => "firewalld",
        "libvirt_network" or "libvirt" => "libvirt",
        var n when n.StartsWith("docker", StringComparison.OrdinalIgnoreCase) => "Docker",
        "kube-proxy" => "kube-proxy",
        _ => "a hand-written nftables ruleset (nftables.service loads /etc/nftables.conf)",
    };

    private static IEnumerable<(string Hook, NftDirection Direction)> Probes(PortForward f)
    {
        yield return ("prerouting", NftDirection.Original);
        yield return ("forward", NftDirection.Original);
        yield return ("forward", NftDirection.Reply);
        yield return ("postrouting", NftDirection.Original);
        if (f.IncludeLocal)
        {
            yield return ("output", NftDirection.Original);
        }
    }

    private static NftPacket Packet(PortForward f, string hook, NftDirection direction, string? routeDevice, string? externalDevice, bool afterDnat)
    {
        if (direction == NftDirection.Reply)
        {
            return new NftPacket
            {
                Hook = hook,
                Family = f.Family,
                Protocol = f.Protocol,
                Source = f.InternalAddress,
                SourcePort = f.InternalPort,
                InInterface = routeDevice,
                OutInterface = hook is "forward" or "postrouting" ? f.InInterface ?? externalDevice : null,
                CtState = "established",
                CtStatus = new HashSet<string> { "dnat", "confirmed", "seen-reply" },
                Direction = NftDirection.Reply,
                CtOriginalDestination = f.ExternalAddress,
                CtOriginalDestinationPort = f.ExternalPort,
                CtReplySource = f.InternalAddress,
                CtReplySourcePort = f.InternalPort,
            };
        }

        var local = hook == "output";
        return new NftPacket
        {
            Hook = hook,
            Family = f.Family,
            Protocol = f.Protocol,
            Destination = afterDnat ? f.InternalAddress : f.ExternalAddress,
            DestinationPort = afterDnat ? f.InternalPort : f.ExternalPort,
            InInterface = local ? null : f.InInterface ?? externalDevice,
            OutInterface = hook is "forward" or "postrouting" ? routeDevice : null,
            CtState = "new",
            CtStatus = afterDnat ? new HashSet<string> { "dnat" } : new HashSet<string>(),
            CtOriginalDestination = f.ExternalAddress,
            CtOriginalDestinationPort = f.ExternalPort,
            CtReplySource = afterDnat ? f.InternalAddress : null,
            CtReplySourcePort = afterDnat ? f.InternalPort : null,
        };
    }

    private static PortForwardFinding Finding(PortForward f, NftRuleset ruleset, NftPacket packet, NftChainVerdict v)
    {
        var table = ruleset.Tables.First(t => t.Family == v.BaseChain.Family && t.Name == v.BaseChain.Table);
        var owner = Owner(table);
        var verb = v.Reject ? "rejects" : "drops";
        var where = v.Rule is null
            ? $"by its policy drop"
            : $"at rule handle {v.Rule.Handle}{(v.DecidingChain.Name == v.BaseChain.Name ? string.Empty : $" of chain {v.DecidingChain.Name}")}: {NftRuleRenderer.Render(v.Rule)}";
        var what = $"Table {table.Display}, chain {v.BaseChain.Name} ({v.BaseChain.Hook} hook, priority {v.BaseChain.Priority ?? 0}) of {owner} {verb} {packet.Describe()} {where}.";
        var why = v.Certain
            ? "Every base chain on a hook sees the packet: PSNetfilter's accept in its own chains does not stop another table from dropping it, so this forward carries nothing."
            : $"Every base chain on a hook sees the packet, and this one drops it unless an earlier rule that depends on the client or the interface accepts it first ({string.Join("; ", v.Depends)}).";
        return new PortForwardFinding(f.Name, v.Certain ? FindingSeverity.Error : FindingSeverity.Warning, CheckName, what, why, Fix(f, table, v, owner))
        {
            Table = table.Display,
            Chain = v.BaseChain.Name,
            Owner = owner,
        };
    }

    /// <summary>The exact command that lets this forward through, per owner.</summary>
    private static string Fix(PortForward f, NftTable table, NftChainVerdict v, string owner)
    {
        var accept = AcceptRule(f);
        return owner switch
        {
            "firewalld" =>
                v.DecidingChain.Name.Contains("dnat", StringComparison.OrdinalIgnoreCase) || v.BaseChain.Name.Contains("FORWARD", StringComparison.Ordinal)
                    ? $"firewalld lets forwarded DNAT connections through only for its own forward ports here (StrictForwardPorts=yes in /etc/firewalld/firewalld.conf). Either set StrictForwardPorts=no and run 'firewall-cmd --reload', or publish the port through firewalld: firewall-cmd --permanent --zone=<zone of the external interface> --add-forward-port=port={Ports(f.ExternalPort, f.ExternalPortEnd, '-')}:proto={Proto(f)}:toport={Ports(f.InternalPort, f.InternalPortEnd, '-')}:toaddr={f.InternalAddress} && firewall-cmd --reload"
                    : $"Allow the traffic in firewalld's zone or policy for the interfaces involved (firewall-cmd --permanent ...; firewall-cmd --reload); a rule added to table {table.Display} by hand is lost at the next reload.",
            "libvirt" =>
                $"libvirt rebuilds table {table.Display} whenever the network starts, so a rule added by hand is lost. Add it from a network hook (/etc/libvirt/hooks/network, on 'started'): nft insert rule {table.Display} {v.DecidingChain.Name} {accept}",
            _ =>
                $"nft insert rule {table.Display} {v.BaseChain.Name} {accept}  (and add the same rule to the file that loads this table, e.g. /etc/nftables.conf, so a reload keeps it)",
        };
    }

    /// <summary>An nft rule that accepts exactly this forward's connections (both directions), as PSNetfilter's own FORWARD rule does.</summary>
    public static string AcceptRule(PortForward f)
    {
        var ip = f.Family == IpFamily.IPv4 ? "ip" : "ip6";
        var original = f.ExternalAddress is { } ext ? $" ct original {ip} daddr {ext}" : string.Empty;
        return $"meta l4proto {Proto(f)} ct status dnat{original} ct original proto-dst {Ports(f.ExternalPort, f.ExternalPortEnd, '-')} ct reply {ip} saddr {f.InternalAddress} accept comment \"{AcceptTag(f.Name)}\"";
    }

    /// <summary>The comment that marks an accept rule PSNetfilter put into another table for forward <paramref name="name"/>.</summary>
    public static string AcceptTag(string name) => $"psnf:v1:{name}:accept";

    /// <summary>True when the finding's table is one PSNetfilter may add its tagged accept rule to (-AcceptInOtherTables).</summary>
    public static bool CanOpen(PortForwardFinding finding) =>
        finding.Check == CheckName && finding.Owner is { } o && o.StartsWith("a hand-written", StringComparison.Ordinal);

    private static string Proto(PortForward f) => f.Protocol == Protocol.Tcp ? "tcp" : "udp";

    private static string Ports(int first, int last, char sep) => first == last ? first.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{first}{sep}{last}";
}
