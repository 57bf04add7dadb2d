using System.Net;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Diagnostics;

/// <summary>
/// Checks of one forward's definition against the gateway it is on (its interfaces and addresses): forwards the
/// kernel accepts but that cannot work, or that take more than was meant. Pure; New-PortForward writes the
/// findings as warnings, Test-PortForward as findings.
/// </summary>
public static class ForwardChecks
{
    /// <summary>External ports below this one are where a gateway's own services listen (SSH, DNS, DHCP, its web interface).</summary>
    public const int SystemPortsEnd = 1024;

    public static IEnumerable<PortForwardFinding> Check(PortForwardDefinition d, GatewayInventory gateway)
    {
        var proto = d.Protocol == Protocol.Tcp ? "tcp" : "udp";
        if (d.ExternalAddress is null && d.IsRange && d.ExternalPort < SystemPortsEnd)
        {
            var ssh = d.Protocol == Protocol.Tcp && d.ExternalPort <= 22 && d.ExternalPortEnd >= 22 ? ", SSH (22) included" : string.Empty;
            var where = d.InInterface is null ? "on every interface" : $"arriving on {d.InInterface}";
            yield return new(d.Name, FindingSeverity.Warning, "CapturesGatewayPorts",
                $"'{d.Name}' forwards {proto} ports {d.ExternalPort}-{d.ExternalPortEnd} of every address of the gateway ({where}), among them the ports below {SystemPortsEnd} where the gateway's own services listen{ssh}.",
                $"Without -ExternalAddress the DNAT rule matches every local address, so new connections to these ports go to {d.InternalAddress} instead of the gateway's own services: from the LAN too, unless -InInterface or -SourceAddress excludes it.",
                "Give -ExternalAddress (the address clients connect to), narrow the range to the ports you mean to forward, or restrict it with -InInterface (the WAN interface) or -SourceAddress.");
        }

        if (d.InInterface is { } iface && !gateway.HasInterface(iface))
        {
            yield return new(d.Name, FindingSeverity.Warning, "InterfaceNotFound",
                $"No interface {(iface.EndsWith('+') ? $"whose name starts with '{iface[..^1]}'" : $"'{iface}'")} exists on the gateway (it has: {string.Join(", ", gateway.Interfaces)}).",
                $"The DNAT rule matches only packets arriving on {iface}: until such an interface exists, '{d.Name}' forwards nothing.",
                "Check the name with 'ip link'. If the interface comes later (a PPP, VPN or VLAN interface), nothing needs to change.");
        }

        if (d.ExternalAddress is { } external && !gateway.HasAddress(external))
        {
            yield return new(d.Name, FindingSeverity.Warning, "ExternalAddressNotLocal",
                $"{external} is not an address of the gateway.",
                $"'{d.Name}' matches only packets addressed to {external}, and none arrive at the gateway unless that address is routed to it (a route on the upstream router, proxy ARP, or a virtual address that keepalived moves here).",
                $"Use one of the gateway's addresses ({Addresses(gateway, external.AddressFamily)}), add the address to an interface (ip addr add), or route it to the gateway.");
        }

        if (!d.IsLoopback && gateway.HasAddress(d.InternalAddress))
        {
            yield return new(d.Name, FindingSeverity.Warning, "InternalAddressIsGateway",
                $"The internal address {d.InternalAddress} is an address of the gateway itself.",
                $"The connections are delivered to the gateway's own port {PortText(d.InternalPort, d.InternalPortEnd)} (through its INPUT chain), not forwarded to another host: the source NAT and the FORWARD rule never apply, and the service sees the client's address.",
                "Give the address of the host behind the gateway. For a port redirect to a service of the gateway itself this works as long as the INPUT chain accepts that port.");
        }
    }

    private static string PortText(int first, int last) => first == last ? first.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{first}-{last}";

    private static string Addresses(GatewayInventory gateway, System.Net.Sockets.AddressFamily family)
    {
        var list = gateway.Addresses.Where(a => a.Address.AddressFamily == family && !IPAddress.IsLoopback(a.Address) && !a.Address.IsIPv6LinkLocal).Select(a => a.Address.ToString()).Distinct().ToList();
        return list.Count == 0 ? "none of this family" : string.Join(", ", list);
    }
}
