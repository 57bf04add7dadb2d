using System.Globalization;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// Which conntrack entries belong to a forward that is removed or replaced: the connections it DNATed. As
/// kube-proxy does for UDP services, only UDP forwards get their entries deleted (see docs/ARCHITECTURE.md).
/// </summary>
public static class ConntrackFilter
{
    /// <summary>Whether the entries of <paramref name="old"/> are deleted when it is removed or replaced.</summary>
    public static bool Applies(PortForward old) => old.Protocol == Protocol.Udp;

    /// <summary>
    /// The options after <c>conntrack -D</c>: family, protocol, the original destination (the forward's external
    /// address, when it has one, and port) and the DNAT target (<c>--dst-nat</c>, the internal address, and the
    /// reply's source port). conntrack(8) filters one port, not a range: for a range the port options are left
    /// out, so every UDP entry DNATed to the internal address through that external address goes (a flow of
    /// another forward to the same host is re-created, unchanged, by its next datagram).
    /// </summary>
    public static IReadOnlyList<string> DeleteArguments(PortForward old)
    {
        var d = old.Definition;
        var args = new List<string> { "-f", d.Family == IpFamily.IPv4 ? "ipv4" : "ipv6", "-p", ProtocolName.Of(d.Protocol) };
        if (d.ExternalAddress is not null)
        {
            args.AddRange(new[] { "--orig-dst", d.ExternalAddress.ToString() });
        }

        if (!d.IsRange)
        {
            args.AddRange(new[] { "--orig-port-dst", d.ExternalPort.ToString(CultureInfo.InvariantCulture) });
        }

        args.AddRange(new[] { "--dst-nat", d.InternalAddress.ToString() });
        if (d.InternalPort == d.InternalPortEnd)
        {
            args.AddRange(new[] { "--reply-port-src", d.InternalPort.ToString(CultureInfo.InvariantCulture) });
        }

        return args;
    }
}
