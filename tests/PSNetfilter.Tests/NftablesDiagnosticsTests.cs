using System.Net;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.NftJson;
using Xunit;

namespace PSNetfilter.Tests;

/// <summary>
/// The nft JSON parser, the renderer and the path evaluator behind Test-PortForward's ForeignTableDrop finding,
/// on dumps the real nft printed (Golden/nftjson, made by make-nftjson.sh and by the real-gateway lab).
/// </summary>
public class NftablesDiagnosticsTests
{
    private static NftRuleset Dump(string name) =>
        NftJsonParser.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", "nftjson", name + ".json")));

    private static PortForward Forward(string name, Protocol protocol, string? external, int port, string internalAddress, int internalPort, string? inInterface = null) =>
        new(PortForwardDefinition.Create(name, protocol, external is null ? null : IPAddress.Parse(external), port, IPAddress.Parse(internalAddress), internalPort,
            SnatMode.Masquerade, null, null, inInterface is null ? null : new ForwardExtras(InInterface: inInterface)));

    private static List<PortForwardFinding> Check(string dump, PortForward f, string? routeDevice = "veth-in")
    {
        var ruleset = Dump(dump);
        return ForeignTableCheck.Evaluate(f, ruleset, routeDevice).ToList();
    }

    private static readonly PortForward Web = Forward("web", Protocol.Tcp, "198.51.100.1", 8080, "192.0.2.10", 80);

    [Fact]
    public void Parser_reads_tables_chains_rules_and_sets_of_a_real_dump()
    {
        var r = Dump("mixed");

        Assert.Equal("1.0.6", r.Version);
        Assert.Equal(new[] { "inet filter", "ip libvirt_network", "ip filter" }, r.Tables.Select(t => t.Display));
        var forward = r.Chain("inet", "filter", "forward")!;
        Assert.True(forward.IsBase);
        Assert.Equal(("filter", "forward", 0, "accept"), (forward.Type, forward.Hook, forward.Priority, forward.Policy));
        Assert.False(r.Chain("inet", "filter", "web")!.IsBase);
        Assert.Equal(6, r.RulesOf(forward).Count);
        Assert.Single(r.Set("inet", "filter", "trusted")!.Elements);
        Assert.True(r.IsIptablesTable(r.Tables.Single(t => t.Display == "ip filter")));
        Assert.False(r.IsIptablesTable(r.Tables.Single(t => t.Display == "ip libvirt_network")));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void An_empty_listing_is_an_empty_ruleset(string text) => Assert.Empty(NftJsonParser.Parse(text).Tables);

    [Theory]
    [InlineData("{\"nftables\": [")]
    [InlineData("[1, 2]")]
    [InlineData("{\"nftables\": [{\"chain\": {\"family\": \"inet\"}}]}")]
    public void Unreadable_output_is_a_typed_error_with_a_stable_id(string text)
    {
        var ex = Assert.Throws<NftParseException>(() => NftJsonParser.Parse(text));
        Assert.Equal("NftRulesetParseError", ex.ErrorId);
        Assert.Equal(FailureKind.InvalidData, ex.Kind);
    }

    [Fact]
    public void Renderer_writes_rules_in_nft_syntax()
    {
        var r = Dump("mixed");
        var rules = r.RulesOf(r.Chain("inet", "filter", "forward")!).Select(NftRuleRenderer.Render).ToList();

        Assert.Equal("ct state established,related accept", rules[0]);
        Assert.Equal("iifname \"lo\" accept", rules[1]);
        Assert.Equal("ip saddr @trusted accept", rules[2]);
        Assert.Equal("tcp dport { 22, 80-90 } counter jump web", rules[3]);
        Assert.EndsWith("udp dport 5353 reject with icmpx admin-prohibited", rules[4]);
        Assert.Equal("iifname vmap { \"veth-out\" : jump zone_out, \"veth-dmz\" : drop }", rules[5]);
    }

    [Fact]
    public void A_policy_drop_forward_chain_of_a_hand_written_table_is_an_error_with_the_rule_that_lets_the_forward_through()
    {
        var finding = Assert.Single(Check("policy-drop", Web));

        Assert.Equal(FindingSeverity.Error, finding.Severity);
        Assert.Equal("ForeignTableDrop", finding.Check);
        Assert.Equal(("inet filter", "forward"), (finding.Table, finding.Chain));
        Assert.Contains("policy drop", finding.What, StringComparison.Ordinal);
        Assert.Contains("hand-written", finding.Owner, StringComparison.Ordinal);
        Assert.StartsWith("nft insert rule inet filter forward " + ForeignTableCheck.AcceptRule(Web), finding.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void The_proposed_accept_rule_in_place_lets_exactly_that_forward_through()
    {
        // policy-drop-dnat-accept holds ForeignTableCheck.AcceptRule(Web) as nft printed it back.
        Assert.Contains(ForeignTableCheck.AcceptRule(Web), File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", "nftjson", "policy-drop-dnat-accept.ruleset")), StringComparison.Ordinal);
        Assert.Empty(Check("policy-drop-dnat-accept", Web));

        var other = Forward("dns", Protocol.Udp, "198.51.100.1", 53, "192.0.2.10", 53);
        Assert.Equal(FindingSeverity.Error, Assert.Single(Check("policy-drop-dnat-accept", other)).Severity);
        var otherPort = Forward("web2", Protocol.Tcp, "198.51.100.1", 8081, "192.0.2.10", 80);
        Assert.Single(Check("policy-drop-dnat-accept", otherPort));
    }

    [Fact]
    public void A_reject_reached_through_a_jump_in_another_table_is_named_with_its_chain_handle_and_owner()
    {
        var guest = Forward("guest", Protocol.Tcp, "198.51.100.1", 8080, "192.168.122.50", 80);

        var findings = Check("mixed", guest, routeDevice: "virbr0");

        var libvirt = Assert.Single(findings, x => x.Table == "ip libvirt_network");
        Assert.Equal(FindingSeverity.Error, libvirt.Severity);
        Assert.Equal("libvirt", libvirt.Owner);
        Assert.Equal("forward", libvirt.Chain);
        Assert.Contains("of chain guest_input: oifname \"virbr0\" counter reject", libvirt.What, StringComparison.Ordinal);
        Assert.Contains("rejects new tcp packets to 192.168.122.50 port 80", libvirt.What, StringComparison.Ordinal);
        Assert.Contains("/etc/libvirt/hooks/network", libvirt.Fix, StringComparison.Ordinal);
        Assert.Contains("nft insert rule ip libvirt_network guest_input " + ForeignTableCheck.AcceptRule(guest), libvirt.Fix, StringComparison.Ordinal);
        Assert.DoesNotContain(findings, x => x.Table == "ip filter");
    }

    [Fact]
    public void A_drop_that_an_earlier_rule_on_an_unknown_field_may_prevent_is_a_warning_naming_that_rule()
    {
        // Port 85 jumps to chain web, whose reject is reached for addresses outside 192.0.2.0/24; the client may
        // be in @trusted (accepted before), which is not known in advance.
        var f = Forward("app", Protocol.Tcp, "198.51.100.1", 85, "198.51.100.20", 85, inInterface: "eth0");

        var finding = Assert.Single(Check("mixed", f));

        Assert.Equal(FindingSeverity.Warning, finding.Severity);
        Assert.Contains("chain web", finding.What, StringComparison.Ordinal);
        Assert.Contains("ip saddr @trusted accept", finding.Why, StringComparison.Ordinal);
        Assert.DoesNotContain("iifname \"lo\" accept", finding.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void A_verdict_map_on_a_known_interface_decides_and_a_goto_does_not_return()
    {
        // From veth-dmz the map drops; from veth-out zone_out accepts DNATed connections before its goto to deny.
        var dmz = Forward("dmz", Protocol.Tcp, "198.51.100.1", 8443, "192.0.2.10", 8443, inInterface: "veth-dmz");
        var outside = Forward("out", Protocol.Tcp, "198.51.100.1", 8443, "192.0.2.10", 8443, inInterface: "veth-out");

        var drop = Assert.Single(Check("mixed", dmz));
        Assert.Contains("iifname vmap", drop.What, StringComparison.Ordinal);
        Assert.Empty(Check("mixed", outside));
    }

    [Fact]
    public void Packets_of_the_other_protocol_or_family_do_not_match_and_an_accepting_ruleset_gives_nothing()
    {
        Assert.Empty(Check("mixed", Web));
        var v6 = Forward("v6", Protocol.Tcp, "2001:db8::1", 8080, "2001:db8:1::10", 80);
        Assert.Equal(FindingSeverity.Error, Assert.Single(Check("policy-drop", v6)).Severity);
        Assert.Empty(ForeignTableCheck.Evaluate(Web, NftRuleset.Empty, null));
    }

    // Dumps taken from the real components in the real-gateway lab (tests/pester/gateways): the lab forwards
    // tcp/8080 and udp/5353 of 198.51.100.1 (on gwx) to 192.0.2.10 (on gwi), or to the guest 192.168.122.10 on virbr0.
    public static TheoryData<string> RealDumps() => new()
    {
        "nftables-handwritten", "nftables-stock", "nftables-stock-reloaded", "firewalld", "firewalld-strict", "firewalld-iptables",
        "firewalld-iptables-reloaded", "libvirt-nftables", "docker", "docker-restarted", "ufw",
    };

    private static List<PortForwardFinding> CheckReal(string dump, Protocol protocol, int port, string internalAddress = "192.0.2.10", string routeDevice = "gwi-x")
    {
        var ruleset = Dump(dump);
        var f = Forward("lab", protocol, "198.51.100.1", port, internalAddress, port);
        return ForeignTableCheck.Evaluate(f, ruleset, routeDevice, "gwx-x").ToList();
    }

    [Theory]
    [MemberData(nameof(RealDumps))]
    public void Every_dump_of_a_real_component_parses_and_every_rule_renders(string dump)
    {
        var r = Dump(dump);

        Assert.StartsWith("1.", r.Version, StringComparison.Ordinal);
        Assert.NotEmpty(r.Tables);
        Assert.All(r.Rules, rule => Assert.False(string.IsNullOrWhiteSpace(NftRuleRenderer.Render(rule))));
        Assert.All(r.Rules, rule => Assert.NotNull(r.Chain(rule.Family, rule.Table, rule.Chain)));
    }

    [Theory]
    [InlineData("nftables-stock")]
    [InlineData("nftables-stock-reloaded")]
    [InlineData("firewalld")]
    [InlineData("firewalld-iptables")]
    [InlineData("firewalld-iptables-reloaded")]
    [InlineData("docker")]
    [InlineData("docker-restarted")]
    [InlineData("ufw")]
    public void Real_components_that_let_the_forward_through_give_no_finding(string dump)
    {
        Assert.Empty(CheckReal(dump, Protocol.Tcp, 8080));
        Assert.Empty(CheckReal(dump, Protocol.Udp, 5353));
    }

    [Fact]
    public void A_real_hand_written_policy_drop_chain_is_found()
    {
        var x = Assert.Single(CheckReal("nftables-handwritten", Protocol.Tcp, 8080));
        Assert.Equal((FindingSeverity.Error, "inet filter", "forward"), (x.Severity, x.Table, x.Chain));
        Assert.Contains("by its policy drop", x.What, StringComparison.Ordinal);
    }

    [Fact]
    public void Real_firewalld_with_strict_forward_ports_is_found_with_its_own_fix()
    {
        foreach (var (proto, port) in new[] { (Protocol.Tcp, 8080), (Protocol.Udp, 5353) })
        {
            var x = Assert.Single(CheckReal("firewalld-strict", proto, port));
            Assert.Equal((FindingSeverity.Error, "inet firewalld", "filter_FORWARD", "firewalld"), (x.Severity, x.Table, x.Chain, x.Owner));
            Assert.Contains("of chain filter_FORWARD_dnat: reject with icmpx admin-prohibited", x.What, StringComparison.Ordinal);
            Assert.Contains("StrictForwardPorts", x.Fix, StringComparison.Ordinal);
            Assert.Contains($"--add-forward-port=port={port}:proto={(proto == Protocol.Tcp ? "tcp" : "udp")}:toport={port}:toaddr=192.0.2.10", x.Fix, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Real_libvirt_nftables_network_rejects_a_forward_to_its_guest()
    {
        var x = Assert.Single(CheckReal("libvirt-nftables", Protocol.Tcp, 8080, "192.168.122.10", "virbr0"));
        Assert.Equal((FindingSeverity.Error, "ip libvirt_network", "forward", "libvirt"), (x.Severity, x.Table, x.Chain, x.Owner));
        Assert.Contains("of chain guest_input: oif \"virbr0\" counter reject", x.What, StringComparison.Ordinal);
        Assert.Contains("/etc/libvirt/hooks/network", x.Fix, StringComparison.Ordinal);

        // A forward to a host that is not behind virbr0 crosses libvirt's chains untouched.
        Assert.Empty(CheckReal("libvirt-nftables", Protocol.Tcp, 8080));
    }

    private const string DockerForward = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :DOCKER-USER - [0:0]
        :DOCKER-ISOLATION-STAGE-1 - [0:0]
        :DOCKER-ISOLATION-STAGE-2 - [0:0]
        :PSNF-FORWARD - [0:0]
        -A FORWARD -j DOCKER-USER
        -A FORWARD -j DOCKER-ISOLATION-STAGE-1
        -A FORWARD -j PSNF-FORWARD
        -A DOCKER-USER -j RETURN
        -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
        -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
        COMMIT

        """;

    [Fact]
    public void A_forward_jump_behind_rules_that_can_drop_is_a_warning_naming_them()
    {
        var finding = ForwardJumpCheck.Evaluate(IptablesSaveParser.Parse(DockerForward, IpFamily.IPv4))!;

        Assert.Equal(FindingSeverity.Warning, finding.Severity);
        Assert.Equal("ForwardJumpNotFirst", finding.Check);
        Assert.Contains("rule 3 of filter/FORWARD", finding.What, StringComparison.Ordinal);
        Assert.Contains("-j DOCKER-USER; -j DOCKER-ISOLATION-STAGE-1", finding.What, StringComparison.Ordinal);
        Assert.Contains("DOCKER-ISOLATION-STAGE-2: -o docker0 -j DROP", finding.Why, StringComparison.Ordinal);
        Assert.StartsWith("iptables -D FORWARD -j PSNF-FORWARD && iptables -I FORWARD 1 -j PSNF-FORWARD", finding.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void A_forward_jump_behind_harmless_rules_is_information_and_a_first_jump_is_nothing()
    {
        var harmless = DockerForward.Replace("-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n", string.Empty, StringComparison.Ordinal);
        Assert.Equal(FindingSeverity.Info, ForwardJumpCheck.Evaluate(IptablesSaveParser.Parse(harmless, IpFamily.IPv4))!.Severity);

        var first = DockerForward.Replace("-A FORWARD -j PSNF-FORWARD\n", string.Empty, StringComparison.Ordinal)
            .Replace("-A FORWARD -j DOCKER-USER\n", "-A FORWARD -j PSNF-FORWARD\n-A FORWARD -j DOCKER-USER\n", StringComparison.Ordinal);
        Assert.Null(ForwardJumpCheck.Evaluate(IptablesSaveParser.Parse(first, IpFamily.IPv4)));
    }
}
