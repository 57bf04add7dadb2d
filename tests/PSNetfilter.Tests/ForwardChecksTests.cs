using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Tests;

/// <summary>The checks of a forward against its gateway (New-PortForward warnings, Test-PortForward findings) and the conntrack filter.</summary>
public sealed class ForwardChecksTests
{
    // ip -j addr show of a gateway: lo, wan0 (203.0.113.1, 2001:db8:1::1), lan0 (198.51.100.1) and ppp-down without addresses.
    private const string AddrJson = """
        [{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},
         {"ifindex":2,"ifname":"wan0","addr_info":[{"family":"inet","local":"203.0.113.1","prefixlen":24},{"family":"inet6","local":"2001:db8:1::1","prefixlen":64},{"family":"inet6","local":"fe80::1","prefixlen":64}]},
         {"ifindex":3,"ifname":"lan0","addr_info":[{"family":"inet","local":"198.51.100.1","prefixlen":24}]},
         {"ifindex":4,"ifname":"ppp-down","addr_info":[]}]
        """;

    private static readonly GatewayInventory Gateway = GatewayInventory.Parse(AddrJson);

    private static PortForwardDefinition Def(string? external = "203.0.113.1", int port = 8080, int? end = null, string @internal = "198.51.100.10", string? iface = null, Protocol protocol = Protocol.Tcp, int? internalPort = null) =>
        PortForwardDefinition.Create("f", protocol, external is null ? null : Defs.Ip(external), port, Defs.Ip(@internal), internalPort, SnatMode.Masquerade, null, null, new ForwardExtras(end, null, null, iface, false));

    private static List<string> Checks(PortForwardDefinition d) => ForwardChecks.Check(d, Gateway).Select(f => f.Check).ToList();

    [Fact]
    public void Inventory_lists_every_interface_and_address()
    {
        Assert.Equal(new[] { "lo", "wan0", "lan0", "ppp-down" }, Gateway.Interfaces);
        Assert.Equal(6, Gateway.Addresses.Count);
        Assert.Contains(("lan0", Defs.Ip("198.51.100.1"), 24), Gateway.Addresses);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Cannot open netlink socket")]
    [InlineData("{\"ifname\":\"lo\"}")]
    public void Inventory_that_is_not_ip_json_is_an_error(string text)
    {
        var ex = Assert.Throws<NetfilterException>(() => GatewayInventory.Parse(text));
        Assert.Equal("UnexpectedToolOutput", ex.ErrorId);
    }

    [Fact]
    public void A_plain_forward_on_a_gateway_address_has_no_finding()
    {
        Assert.Empty(Checks(Def()));
        Assert.Empty(Checks(Def(external: null, port: 8000, end: 8010, iface: "wan0")));
        Assert.Empty(Checks(Def(iface: "ppp+"))); // a prefix that matches ppp-down
        Assert.Empty(Checks(Def(external: "2001:db8:1::1", @internal: "2001:db8:2::10")));
    }

    [Theory]
    [InlineData(1, 65535, true)]
    [InlineData(20, 30, true)]
    [InlineData(1000, 1100, false)]
    [InlineData(1024, 65535, false)]
    public void A_range_without_external_address_that_takes_the_gateways_system_ports_is_a_warning(int first, int last, bool ssh)
    {
        var findings = ForwardChecks.Check(Def(external: null, port: first, end: last), Gateway).ToList();
        if (first >= ForwardChecks.SystemPortsEnd)
        {
            Assert.Empty(findings);
            return;
        }

        var f = Assert.Single(findings);
        Assert.Equal(("CapturesGatewayPorts", FindingSeverity.Warning), (f.Check, f.Severity));
        Assert.Equal(ssh, f.What.Contains("SSH (22)", StringComparison.Ordinal));
        Assert.Contains("-ExternalAddress", f.Fix, StringComparison.Ordinal);
        Assert.Empty(Checks(Def(external: "203.0.113.1", port: first, end: last))); // one address: the gateway's others keep their ports
    }

    [Fact]
    public void An_interface_the_gateway_does_not_have_is_a_warning()
    {
        var f = Assert.Single(ForwardChecks.Check(Def(iface: "eth9"), Gateway));
        Assert.Equal(("InterfaceNotFound", FindingSeverity.Warning), (f.Check, f.Severity));
        Assert.Contains("'eth9'", f.What, StringComparison.Ordinal);
        Assert.Contains("wan0", f.What, StringComparison.Ordinal);
        Assert.Equal("InterfaceNotFound", Assert.Single(Checks(Def(iface: "eth+"))));
    }

    [Fact]
    public void An_external_address_that_is_not_the_gateways_is_a_warning_that_names_its_addresses()
    {
        var f = Assert.Single(ForwardChecks.Check(Def(external: "192.0.2.7"), Gateway));
        Assert.Equal(("ExternalAddressNotLocal", FindingSeverity.Warning), (f.Check, f.Severity));
        Assert.Contains("routed", f.Why, StringComparison.Ordinal);
        Assert.Contains("203.0.113.1, 198.51.100.1", f.Fix, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", f.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void An_internal_address_of_the_gateway_itself_is_a_warning()
    {
        var f = Assert.Single(ForwardChecks.Check(Def(@internal: "198.51.100.1", internalPort: 22), Gateway));
        Assert.Equal(("InternalAddressIsGateway", FindingSeverity.Warning), (f.Check, f.Severity));
        Assert.Contains("port 22", f.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void A_forward_to_its_own_external_endpoint_is_refused()
    {
        var ex = Assert.Throws<PortForwardValidationException>(() => Def(external: "198.51.100.1", @internal: "198.51.100.1"));
        Assert.Equal("ForwardToItself", ex.ErrorId);
        Assert.Equal("ForwardToItself", Assert.Throws<PortForwardValidationException>(() => Def(external: "198.51.100.1", port: 8000, end: 8010, @internal: "198.51.100.1")).ErrorId);
        Assert.Equal("InternalAddressIsGateway", Assert.Single(Checks(Def(external: "198.51.100.1", @internal: "198.51.100.1", internalPort: 22))));
    }

    [Fact]
    public void Test_port_forward_reports_the_checks_as_findings()
    {
        var wide = Def(external: null, port: 1, end: 65535, iface: "eth9");
        var input = new DiagnosticsInput
        {
            Forwards = new[] { new PortForward(wide) },
            ForwardingEnabled = new Dictionary<IpFamily, bool> { [IpFamily.IPv4] = true },
            Gateway = Gateway,
        };

        var findings = PortForwardDiagnostics.Evaluate(input);

        Assert.Equal(new[] { "CapturesGatewayPorts", "InterfaceNotFound" }, findings.Select(f => f.Check));
        Assert.All(findings, f => Assert.Equal("f", f.Forward));
        Assert.Empty(PortForwardDiagnostics.Evaluate(new DiagnosticsInput { Forwards = input.Forwards, ForwardingEnabled = input.ForwardingEnabled }));
    }

    [Fact]
    public void Conntrack_filter_names_the_forwards_original_destination_and_its_dnat_target()
    {
        Assert.Equal(
            "-f ipv4 -p udp --orig-dst 203.0.113.1 --orig-port-dst 5000 --dst-nat 198.51.100.10 --reply-port-src 5000",
            string.Join(' ', ConntrackFilter.DeleteArguments(new PortForward(Def(port: 5000, protocol: Protocol.Udp)))));
        Assert.Equal(
            "-f ipv6 -p udp --orig-port-dst 53 --dst-nat 2001:db8:2::10 --reply-port-src 5353",
            string.Join(' ', ConntrackFilter.DeleteArguments(new PortForward(Def(external: null, port: 53, @internal: "2001:db8:2::10", protocol: Protocol.Udp, internalPort: 5353)))));
        // conntrack(8) filters one port, not a range: a range is cut by address and DNAT target.
        Assert.Equal(
            "-f ipv4 -p udp --orig-dst 203.0.113.1 --dst-nat 198.51.100.10",
            string.Join(' ', ConntrackFilter.DeleteArguments(new PortForward(Def(port: 10000, end: 10100, protocol: Protocol.Udp)))));
        Assert.True(ConntrackFilter.Applies(new PortForward(Def(protocol: Protocol.Udp))));
        Assert.False(ConntrackFilter.Applies(new PortForward(Def())));
    }
}
