using System.Net;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

public class ValidationTests
{
    private static readonly IPAddress Internal4 = Defs.Ip("198.51.100.10");
    private static readonly IPAddress Internal6 = Defs.Ip("2001:db8:2::10");

    private static string ErrorIdOf(Action action) => Assert.Throws<PortForwardValidationException>(action).ErrorId;

    private static PortForwardDefinition Create(
        string? name = "f",
        Protocol protocol = Protocol.Tcp,
        IPAddress? external = null,
        int externalPort = 8080,
        IPAddress? internalAddress = null,
        int? internalPort = null,
        SnatMode mode = SnatMode.Masquerade,
        IPAddress? snat = null,
        string? description = null) =>
        PortForwardDefinition.Create(name, protocol, external, externalPort, internalAddress ?? Internal4, internalPort, mode, snat, description);

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(65536)]
    [InlineData(int.MinValue)]
    [InlineData(int.MaxValue)]
    public void Out_of_range_ports_are_InvalidPort(int port)
    {
        Assert.Equal("InvalidPort", ErrorIdOf(() => Create(externalPort: port)));
        Assert.Equal("InvalidPort", ErrorIdOf(() => Create(internalPort: port)));
        var ex = Assert.Throws<PortForwardValidationException>(() => Create(externalPort: port));
        Assert.Equal(port, ex.Target);
        Assert.Equal(FailureKind.InvalidArgument, ex.Kind);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(65535)]
    public void Edge_ports_are_accepted_and_internal_port_defaults_to_external(int port)
    {
        var d = Create(externalPort: port);
        Assert.Equal(port, d.ExternalPort);
        Assert.Equal(port, d.InternalPort);
        Assert.Equal(22, Create(externalPort: port, internalPort: 22).InternalPort);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("\t\n")]
    [InlineData(null)]
    [InlineData("abc")]
    [InlineData("10.1")]
    [InlineData("10.1.2")]
    [InlineData("1.2.3.4/24")]
    [InlineData("1.2.3.4/32")]
    [InlineData("1.2.3.256")]
    [InlineData("1.2.3.4.5")]
    [InlineData("0x1.2.3.4")]
    [InlineData("167772161")]
    [InlineData("fe80::1%eth0")]
    [InlineData("fe80::1%2")]
    [InlineData("2001:db8::/64")]
    [InlineData("2001:db8:::1")]
    [InlineData("::ffff:1.2.3.4")]
    [InlineData("1.2.3.4:80")]
    [InlineData("host.example")]
    public void Bad_address_text_is_InvalidAddress(string? text)
    {
        var ex = Assert.Throws<PortForwardValidationException>(() => PortForwardDefinition.ParseAddress(text, "InternalAddress"));
        Assert.Equal("InvalidAddress", ex.ErrorId);
        Assert.Contains("InternalAddress", ex.Message);
        Assert.Equal(text, ex.Target);
    }

    [Fact]
    public void Prefix_length_gets_a_hint()
    {
        var ex = Assert.Throws<PortForwardValidationException>(() => PortForwardDefinition.ParseAddress("1.2.3.4/24", "ExternalAddress"));
        Assert.Contains("prefix length", ex.Message);
    }

    [Theory]
    [InlineData("198.51.100.10", "198.51.100.10")]
    [InlineData(" 198.51.100.10 ", "198.51.100.10")]
    [InlineData("2001:DB8::1", "2001:db8::1")]
    [InlineData("::1", "::1")]
    [InlineData("0.0.0.0", "0.0.0.0")]
    public void Good_address_text_parses(string text, string expected)
    {
        Assert.Equal(Defs.Ip(expected), PortForwardDefinition.ParseAddress(text, "X"));
    }

    [Fact]
    public void Leading_zero_octets_are_refused()
    {
        Assert.Equal("InvalidAddress", ErrorIdOf(() => PortForwardDefinition.ParseAddress("010.1.1.1", "InternalAddress")));
    }

    [Theory]
    [InlineData("224.0.0.1")]
    [InlineData("239.255.255.250")]
    [InlineData("255.255.255.255")]
    [InlineData("ff02::1")]
    [InlineData("ff05::2")]
    public void Multicast_and_broadcast_are_InvalidAddress_everywhere(string text)
    {
        var a = Defs.Ip(text);
        var v6 = a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        var good = v6 ? Internal6 : Internal4;
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(internalAddress: a)));
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(external: a, internalAddress: good)));
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(internalAddress: good, mode: SnatMode.Snat, snat: a)));
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    public void Unspecified_internal_or_snat_address_is_InvalidAddress(string text)
    {
        var a = Defs.Ip(text);
        var good = text == "::" ? Internal6 : Internal4;
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(internalAddress: a)));
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(internalAddress: good, mode: SnatMode.Snat, snat: a)));
    }

    [Fact]
    public void Ipv4_mapped_and_zoned_address_objects_are_InvalidAddress()
    {
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(internalAddress: Defs.Ip("1.2.3.4").MapToIPv6())));
        var zoned = new IPAddress(Defs.Ip("fe80::1").GetAddressBytes(), 2);
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(internalAddress: zoned)));
        Assert.Equal("InvalidAddress", ErrorIdOf(() => Create(external: zoned, internalAddress: Internal6)));
    }

    [Fact]
    public void Family_mismatch_is_AddressFamilyMismatch()
    {
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => Create(external: Defs.Ip("2001:db8::1"), internalAddress: Internal4)));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => Create(external: Defs.Ip("203.0.113.1"), internalAddress: Internal6)));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => Create(internalAddress: Internal4, mode: SnatMode.Snat, snat: Defs.Ip("2001:db8::1"))));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => Create(internalAddress: Internal6, mode: SnatMode.Snat, snat: Defs.Ip("198.51.100.1"))));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => Create(external: IPAddress.Any, internalAddress: Internal6)));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => Create(external: IPAddress.IPv6Any, internalAddress: Internal4)));
    }

    [Theory]
    [InlineData("0.0.0.0", "198.51.100.10", "tcp-any-8080")]
    [InlineData("::", "2001:db8:2::10", "tcp-any6-8080")]
    public void Unspecified_external_address_means_any(string external, string internalAddress, string defaultName)
    {
        var d = Create(name: null, external: Defs.Ip(external), internalAddress: Defs.Ip(internalAddress));
        Assert.Null(d.ExternalAddress);
        Assert.Equal(defaultName, d.Name);
        Assert.Equal(Create(name: null, external: null, internalAddress: Defs.Ip(internalAddress)), d);
    }

    [Fact]
    public void Family_follows_the_internal_address()
    {
        Assert.Equal(IpFamily.IPv4, Create().Family);
        Assert.Equal(IpFamily.IPv6, Create(internalAddress: Internal6).Family);
    }

    [Theory]
    [InlineData("a\"b")]
    [InlineData("a b")]
    [InlineData("a\nb")]
    [InlineData("a:b")]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("a'b")]
    [InlineData("a\\b")]
    [InlineData("wéb")]
    [InlineData("a*")]
    [InlineData("-j ACCEPT")]
    public void Bad_names_are_InvalidName(string name)
    {
        Assert.Equal("InvalidName", ErrorIdOf(() => PortForwardDefinition.ValidateName(name)));
        Assert.Equal("InvalidName", ErrorIdOf(() => Create(name: name)));
        Assert.False(PortForwardDefinition.IsValidName(name));
    }

    [Fact]
    public void Name_with_a_trailing_newline_is_InvalidName()
    {
        // Today Create("web\n") succeeds and RuleLayout.Render then throws InvalidOperationException (its own
        // guard regex has the same '$'), so New-PortForward -Name "web`n" fails late with a non-Netfilter error.
        Assert.Equal("InvalidName", ErrorIdOf(() => PortForwardDefinition.ValidateName("web\n")));
        Assert.Equal("InvalidName", ErrorIdOf(() => Create(name: "web\n")));
        Assert.False(PortForwardDefinition.IsValidName("web\n"));
    }

    [Fact]
    public void Name_length_limit_is_64()
    {
        var ok = new string('a', 64);
        Assert.Equal(ok, Create(name: ok).Name);
        Assert.True(PortForwardDefinition.IsValidName(ok));
        Assert.Equal("InvalidName", ErrorIdOf(() => Create(name: new string('a', 65))));
        Assert.Equal("InvalidName", ErrorIdOf(() => PortForwardDefinition.ValidateName(null)));
        Assert.False(PortForwardDefinition.IsValidName(null));
    }

    [Theory]
    [InlineData("web")]
    [InlineData("ssh.direct")]
    [InlineData("A-b_c.9")]
    [InlineData("x-")]
    [InlineData("...")]
    public void Good_names_are_accepted(string name)
    {
        PortForwardDefinition.ValidateName(name);
        Assert.Equal(name, Create(name: name).Name);
    }

    [Fact]
    public void Default_names()
    {
        Assert.Equal("tcp-203.0.113.1-8080", Create(name: null, external: Defs.Ip("203.0.113.1")).Name);
        Assert.Equal("tcp-any-8080", Create(name: null).Name);
        Assert.Equal("udp-any-53", Create(name: null, protocol: Protocol.Udp, externalPort: 53).Name);
        Assert.Equal("tcp-2001_db8_1__1-443", Create(name: null, external: Defs.Ip("2001:db8:1::1"), externalPort: 443, internalAddress: Internal6).Name);
        Assert.Equal("udp-any-5353", PortForwardDefinition.DefaultName("udp", null, 5353));

        // The longest IPv6 default name is still a valid name.
        var longest = Defs.Ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
        PortForwardDefinition.ValidateName(PortForwardDefinition.DefaultName("tcp", longest, 65535));
    }

    [Fact]
    public void Default_names_of_v4_and_v6_forwards_on_any_address_differ()
    {
        // New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10, then the same with 2001:db8:2::10:
        // the second is refused as PortForwardExists, and with -Force it replaces the IPv4 forward.
        var v4 = Create(name: null, externalPort: 8080);
        var v6 = Create(name: null, externalPort: 8080, internalAddress: Internal6);
        Assert.NotEqual(v4.Name, v6.Name);
    }

    [Fact]
    public void Snat_address_rules()
    {
        Assert.Equal("SnatAddressRequired", ErrorIdOf(() => Create(mode: SnatMode.Snat, snat: null)));
        Assert.Equal("SnatAddressConflict", ErrorIdOf(() => Create(mode: SnatMode.Masquerade, snat: Defs.Ip("198.51.100.1"))));
        Assert.Equal("SnatAddressConflict", ErrorIdOf(() => Create(mode: SnatMode.None, snat: Defs.Ip("198.51.100.1"))));
        Assert.Equal(Defs.Ip("198.51.100.1"), Create(mode: SnatMode.Snat, snat: Defs.Ip("198.51.100.1")).SnatAddress);
    }

    [Fact]
    public void Undefined_enum_values_are_refused()
    {
        Assert.Equal("InvalidProtocol", ErrorIdOf(() => Create(protocol: (Protocol)7)));
        Assert.Equal("InvalidSnatMode", ErrorIdOf(() => Create(mode: (SnatMode)7)));
    }

    [Fact]
    public void Empty_description_is_none()
    {
        Assert.Null(Create(description: string.Empty).Description);
        Assert.Equal(Create(description: null), Create(description: string.Empty));
        Assert.NotEqual(Create(description: "a"), Create(description: "b"));
    }

    [Fact]
    public void Differences_lists_what_changed()
    {
        var a = Defs.Web;
        var b = PortForwardDefinition.Create("web", Protocol.Tcp, null, 8080, Defs.Ip("198.51.100.11"), 80, SnatMode.Masquerade, null, "x");
        var diff = b.Differences(a).ToList();
        Assert.Equal(7, diff.Count);
        Assert.Contains("InternalPortEnd 8080 -> 80", diff);
        Assert.Contains("ExternalAddress 203.0.113.1 -> any", diff);
        Assert.Contains("InternalAddress 198.51.100.10 -> 198.51.100.11", diff);
        Assert.Contains("InternalPort 8080 -> 80", diff);
        Assert.Contains("SnatMode Snat -> Masquerade", diff);
        Assert.Contains("Description", diff);
        Assert.Empty(a.Differences(Defs.Web));
    }

    [Fact]
    public void Request_validate_checks_everything_before_the_route_is_known()
    {
        var needsRoute = new PortForwardRequest("r", Protocol.Tcp, null, 80, Internal4, null, SnatMode.Snat, null, null);
        Assert.True(needsRoute.NeedsRouteSource);
        Assert.Equal(IPAddress.Loopback, needsRoute.Validate().SnatAddress); // stand-in until the route is resolved
        Assert.Equal(IPAddress.IPv6Loopback, (needsRoute with { InternalAddress = Internal6 }).Validate().SnatAddress);
        Assert.Equal(Defs.Ip("198.51.100.1"), needsRoute.Build(Defs.Ip("198.51.100.1")).SnatAddress);

        Assert.False((needsRoute with { SnatMode = SnatMode.Masquerade }).NeedsRouteSource);
        Assert.False((needsRoute with { SnatAddress = Defs.Ip("198.51.100.1") }).NeedsRouteSource);

        Assert.Equal("InvalidPort", ErrorIdOf(() => (needsRoute with { ExternalPort = 0 }).Validate()));
        Assert.Equal("InvalidPort", ErrorIdOf(() => (needsRoute with { InternalPort = 65536 }).Validate()));
        Assert.Equal("InvalidName", ErrorIdOf(() => (needsRoute with { Name = "a b" }).Validate()));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => (needsRoute with { ExternalAddress = Defs.Ip("2001:db8::1") }).Validate()));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => (needsRoute with { SnatAddress = Defs.Ip("2001:db8::1") }).Validate()));
        Assert.Equal("InvalidAddress", ErrorIdOf(() => (needsRoute with { InternalAddress = Defs.Ip("224.0.0.1") }).Validate()));
        Assert.Equal("InvalidAddress", ErrorIdOf(() => (needsRoute with { InternalAddress = IPAddress.Any }).Validate()));
        Assert.Equal("DescriptionTooLong", ErrorIdOf(() => (needsRoute with { Description = new string('x', 129) }).Validate()));
    }

    [Fact]
    public void Request_with_an_address_for_masquerade_or_none_is_SnatAddressConflict()
    {
        var request = new PortForwardRequest("r", Protocol.Tcp, null, 80, Internal4, null, SnatMode.None, Defs.Ip("198.51.100.1"), null);
        Assert.Equal("SnatAddressConflict", ErrorIdOf(() => request.Validate()));
        Assert.Equal("SnatAddressConflict", ErrorIdOf(() => (request with { SnatMode = SnatMode.Masquerade }).Validate()));
    }

    [Fact]
    public void Loopback_targets_need_an_interface_and_no_snat()
    {
        var lo = Defs.Ip("127.0.0.1");
        var eth0 = new ForwardExtras(InInterface: "eth0");
        Assert.Equal("LoopbackNeedsInInterface", ErrorIdOf(() => Create(internalAddress: lo, mode: SnatMode.None)));
        Assert.Equal("LoopbackNeedsNoSnat", ErrorIdOf(() => PortForwardDefinition.Create("l", Protocol.Tcp, null, 8080, lo, 80, SnatMode.Masquerade, null, null, eth0)));
        Assert.Equal("LoopbackNotSupported", ErrorIdOf(() => PortForwardDefinition.Create("l", Protocol.Tcp, null, 8080, IPAddress.IPv6Loopback, 80, SnatMode.None, null, null, eth0)));
        var ok = PortForwardDefinition.Create("l", Protocol.Tcp, null, 8080, lo, 80, SnatMode.None, null, null, eth0);
        Assert.True(ok.IsLoopback);

        // A request to a loopback address needs no route: its default SNAT mode becomes None.
        var request = new PortForwardRequest("l", Protocol.Tcp, null, 8080, lo, 80, SnatMode.Snat, null, null, eth0);
        Assert.False(request.NeedsRouteSource);
        Assert.Equal(SnatMode.None, request.Validate().SnatMode);
    }

    [Fact]
    public void Port_ranges()
    {
        var r = PortForwardDefinition.Create("r", Protocol.Tcp, null, 8000, Internal4, null, SnatMode.None, null, null, new ForwardExtras(ExternalPortEnd: 8010));
        Assert.Equal((8000, 8010, 8000, 8010), (r.ExternalPort, r.ExternalPortEnd, r.InternalPort, r.InternalPortEnd));
        Assert.True(r.IsRange);
        var shifted = PortForwardDefinition.Create("r", Protocol.Tcp, null, 8000, Internal4, 9000, SnatMode.None, null, null, new ForwardExtras(8010, 9010));
        Assert.Equal((9000, 9010), (shifted.InternalPort, shifted.InternalPortEnd));
        var toOne = PortForwardDefinition.Create("r", Protocol.Tcp, null, 8000, Internal4, 80, SnatMode.None, null, null, new ForwardExtras(ExternalPortEnd: 8010));
        Assert.Equal((80, 80), (toOne.InternalPort, toOne.InternalPortEnd));

        Assert.Equal("InvalidPort", ErrorIdOf(() => PortForwardDefinition.Create("r", Protocol.Tcp, null, 8010, Internal4, null, SnatMode.None, null, null, new ForwardExtras(ExternalPortEnd: 8000))));
        Assert.Equal("InvalidPort", ErrorIdOf(() => PortForwardDefinition.Create("r", Protocol.Tcp, null, 8000, Internal4, null, SnatMode.None, null, null, new ForwardExtras(ExternalPortEnd: 65536))));
        Assert.Equal("InvalidPort", ErrorIdOf(() => PortForwardDefinition.Create("r", Protocol.Tcp, null, 100, Internal4, 65530, SnatMode.None, null, null, new ForwardExtras(110, 65540))));
        Assert.Equal("PortRangeMismatch", ErrorIdOf(() => PortForwardDefinition.Create("r", Protocol.Tcp, null, 8000, Internal4, 9000, SnatMode.None, null, null, new ForwardExtras(8010, 9005))));

        Assert.Equal(new PortRange(8000, 8010), PortRange.Parse("8000-8010"));
        Assert.Equal(new PortRange(8000, 8010), PortRange.Parse(" 8000:8010 "));
        Assert.Equal(new PortRange(22, 22), PortRange.Parse("22"));
        Assert.Equal("8000-8010", PortRange.Parse("8000-8010").ToString());
        foreach (var bad in new[] { "", "x", "0", "65536", "10-5", "-5", "1-", "1-2-3", "1.5" })
        {
            Assert.Equal("InvalidPort", ErrorIdOf(() => PortRange.Parse(bad)));
        }
    }

    [Theory]
    [InlineData("eth0", true)]
    [InlineData("wan+", true)]
    [InlineData("br-lan.10", true)]
    [InlineData("abcdefghijklmno", true)]
    [InlineData("abcdefghijklmnop", false)]
    [InlineData("eth 0", false)]
    [InlineData("eth0\"", false)]
    [InlineData("+", false)]
    [InlineData("eth0++", false)]
    [InlineData("eth/0", false)]
    public void Interface_names(string name, bool ok)
    {
        PortForwardDefinition Make() => PortForwardDefinition.Create("i", Protocol.Tcp, null, 80, Internal4, null, SnatMode.None, null, null, new ForwardExtras(InInterface: name));
        if (ok)
        {
            Assert.Equal(name, Make().InInterface);
        }
        else
        {
            Assert.Equal("InvalidInterface", ErrorIdOf(() => Make()));
        }
    }

    [Fact]
    public void Interface_with_a_trailing_newline_is_InvalidInterface()
    {
        Assert.Equal("InvalidInterface", ErrorIdOf(() => PortForwardDefinition.Create("i", Protocol.Tcp, null, 80, Internal4, null, SnatMode.None, null, null, new ForwardExtras(InInterface: "eth0\n"))));
    }

    [Theory]
    [InlineData("192.0.2.7", "192.0.2.7/32")]
    [InlineData("192.0.2.0/24", "192.0.2.0/24")]
    [InlineData(" 0.0.0.0/0 ", "0.0.0.0/0")]
    [InlineData("2001:db8::/32", "2001:db8::/32")]
    [InlineData("2001:db8::1", "2001:db8::1/128")]
    public void Source_networks_parse(string text, string expected)
    {
        Assert.Equal(expected, PortForwardDefinition.ParseNetwork(text).ToString());
    }

    [Theory]
    [InlineData("192.0.2.0/33")]
    [InlineData("192.0.2.0/-1")]
    [InlineData("192.0.2.0/")]
    [InlineData("10.1/8")]
    [InlineData("abc")]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("2001:db8::1/129")]
    public void Bad_source_networks_are_InvalidSourceAddress(string? text)
    {
        Assert.Equal("InvalidSourceAddress", ErrorIdOf(() => PortForwardDefinition.ParseNetwork(text)));
    }

    [Fact]
    public void Source_network_with_host_bits_is_InvalidSourceAddress()
    {
        // The code's own message says: "has host bits set beyond /24: give the network address". A user who meant
        // one host gets the whole /24 allowed instead.
        Assert.Equal("InvalidSourceAddress", ErrorIdOf(() => PortForwardDefinition.ParseNetwork("192.0.2.7/24")));
        Assert.Equal("InvalidSourceAddress", ErrorIdOf(() => PortForwardDefinition.ParseNetwork("2001:db8::1/32")));
    }

    [Fact]
    public void Sources_must_match_the_family_and_are_kept_sorted_and_unique()
    {
        var v4 = PortForwardDefinition.ParseNetwork("192.0.2.0/24");
        var v4b = PortForwardDefinition.ParseNetwork("10.0.0.7");
        var v6 = PortForwardDefinition.ParseNetwork("2001:db8::/32");
        var d = PortForwardDefinition.Create("s", Protocol.Tcp, null, 80, Internal4, null, SnatMode.None, null, null, new ForwardExtras(SourceAddresses: new[] { v4, v4b, v4 }));
        Assert.Equal(new[] { "10.0.0.7/32", "192.0.2.0/24" }, d.SourceAddresses.Select(n => n.ToString()));
        Assert.Equal("AddressFamilyMismatch", ErrorIdOf(() => PortForwardDefinition.Create("s", Protocol.Tcp, null, 80, Internal4, null, SnatMode.None, null, null, new ForwardExtras(SourceAddresses: new[] { v6 }))));
    }

    [Fact]
    public void Printable_escapes_control_characters_in_messages()
    {
        var ex = Assert.Throws<PortForwardValidationException>(() => PortForwardDefinition.ValidateName("a\nb\u001b"));
        Assert.DoesNotContain("\n", ex.Message);
        Assert.Contains("\\u000a", ex.Message);
        Assert.Contains("\\u001b", ex.Message);
    }
}
