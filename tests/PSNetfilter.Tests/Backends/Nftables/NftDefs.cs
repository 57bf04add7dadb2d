using System.Net;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>The forwards the nftables backend tests use: one per variant of the layout.</summary>
internal static class NftDefs
{
    public static IPAddress Ip(string s) => IPAddress.Parse(s);

    public static IPNetwork Net(string s) => PortForwardDefinition.ParseNetwork(s);

    /// <summary>tcp 203.0.113.1:8080 -> 198.51.100.10:80, SNAT to 198.51.100.1: a map forward.</summary>
    public static PortForwardDefinition Web => PortForwardDefinition.Create("web", Protocol.Tcp, Ip("203.0.113.1"), 8080, Ip("198.51.100.10"), 80, SnatMode.Snat, Ip("198.51.100.1"), null);

    /// <summary>Every variant: v4, v6, ranges, allow-list, interface with '+', any address, the three SNAT modes, IncludeLocal, hairpin, odd descriptions.</summary>
    public static IReadOnlyList<PortForwardDefinition> All() => new[]
    {
        Web,
        PortForwardDefinition.Create("web6", Protocol.Tcp, Ip("2001:db8:1::1"), 8080, Ip("2001:db8:2::10"), 80, SnatMode.Snat, Ip("2001:db8:2::1"), "v6 \"quoted\""),
        PortForwardDefinition.Create("dns", Protocol.Udp, null, 5353, Ip("198.51.100.10"), 53, SnatMode.Masquerade, null, "local dns"),
        PortForwardDefinition.Create("dns6", Protocol.Udp, null, 5353, Ip("2001:db8:2::10"), 53, SnatMode.None, null, null),
        PortForwardDefinition.Create("range-one", Protocol.Tcp, Ip("203.0.113.1"), 9000, Ip("198.51.100.11"), 9999, SnatMode.Masquerade, null, null, new ForwardExtras(ExternalPortEnd: 9010, InternalPortEnd: 9999)),
        PortForwardDefinition.Create("range-shift", Protocol.Tcp, Ip("203.0.113.1"), 7000, Ip("198.51.100.12"), 17000, SnatMode.None, null, null, new ForwardExtras(ExternalPortEnd: 7003, InternalPortEnd: 17003)),
        PortForwardDefinition.Create("range-shift6", Protocol.Udp, null, 7000, Ip("2001:db8:2::12"), 17000, SnatMode.Masquerade, null, null, new ForwardExtras(ExternalPortEnd: 7002, InternalPortEnd: 17002)),
        PortForwardDefinition.Create("allow", Protocol.Tcp, Ip("203.0.113.1"), 2222, Ip("198.51.100.20"), 22, SnatMode.Snat, Ip("198.51.100.1"), null,
            new ForwardExtras(SourceAddresses: new[] { Net("192.0.2.0/24"), Net("198.51.100.7") })),
        PortForwardDefinition.Create("allow6", Protocol.Tcp, null, 2222, Ip("2001:db8:2::20"), 22, SnatMode.None, null, null,
            new ForwardExtras(SourceAddresses: new[] { Net("2001:db8:9::/48") }, InInterface: "veth+")),
        PortForwardDefinition.Create("iif", Protocol.Udp, Ip("203.0.113.1"), 6000, Ip("198.51.100.30"), 6000, SnatMode.Masquerade, null, null, new ForwardExtras(InInterface: "eth0")),
        PortForwardDefinition.Create("local", Protocol.Tcp, Ip("203.0.113.1"), 4443, Ip("198.51.100.40"), 443, SnatMode.Snat, Ip("198.51.100.1"), null, new ForwardExtras(IncludeLocal: true)),
        PortForwardDefinition.Create("hairpin", Protocol.Tcp, null, 4444, Ip("198.51.100.41"), 443, SnatMode.None, null, null,
            new ForwardExtras(IncludeLocal: true, HairpinNetwork: Net("198.51.100.0/24"))),
        PortForwardDefinition.Create("loop", Protocol.Tcp, Ip("203.0.113.1"), 3000, Ip("127.0.0.1"), 3001, SnatMode.None, null, null, new ForwardExtras(InInterface: "eth1")),
        PortForwardDefinition.Create("odd", Protocol.Tcp, Ip("203.0.113.2"), 8080, Ip("198.51.100.50"), 80, SnatMode.None, null,
            "\"; flush ruleset; add table ip x # \u00e9\u00e8 } { \\ ` $(id) " + new string('z', 60)),
        PortForwardDefinition.Create(new string('n', 64), Protocol.Tcp, Ip("203.0.113.3"), 8080, Ip("198.51.100.51"), 80, SnatMode.Masquerade, null, new string('\u00e9', 60)),
    };
}
