using System.Text;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Tests;

public class RuleLayoutTests
{
    private static string[] Specs(PortForwardDefinition d) => RuleLayout.Render(d).Select(r => $"{r.Table}/{r.Chain}/{r.Role}: {r.Spec}").ToArray();

    [Fact]
    public void Snat_mode_renders_dnat_snat_and_forward()
    {
        Assert.Equal(
            new[]
            {
                "nat/PSNF-PRE-T1F9/Dnat: -d 203.0.113.1/32 -p tcp -m tcp --dport 8080 -m comment --comment psnf:v1:web:dnat:snat: -j DNAT --to-destination 198.51.100.10:8080",
                "nat/PSNF-POST-1F9/Snat: -d 198.51.100.10/32 -p tcp -m tcp --dport 8080 -m conntrack --ctstate DNAT --ctorigdst 203.0.113.1/32 --ctorigdstport 8080 -m comment --comment psnf:v1:web:snat -j SNAT --to-source 198.51.100.1",
                "filter/PSNF-FWD-1F9/Forward: -m conntrack --ctstate DNAT --ctproto tcp --ctorigdst 203.0.113.1/32 --ctorigdstport 8080 --ctreplsrc 198.51.100.10/32 --ctreplsrcport 8080 -m comment --comment psnf:v1:web:fwd -j ACCEPT",
            },
            Specs(Defs.Web));
    }

    [Fact]
    public void Masquerade_without_external_address_uses_addrtype_local_and_no_ctorigdst()
    {
        Assert.Equal(
            new[]
            {
                "nat/PSNF-PRE-U14E/Dnat: -p udp -m udp --dport 5353 -m addrtype --dst-type LOCAL -m comment --comment psnf:v1:dns:dnat:masq:bG9jYWwgZG5z:D -j DNAT --to-destination 198.51.100.10:53",
                "nat/PSNF-POST-14E/Snat: -d 198.51.100.10/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctorigdstport 5353 -m comment --comment psnf:v1:dns:snat:D -j MASQUERADE",
                "filter/PSNF-FWD-14E/Forward: -m conntrack --ctstate DNAT --ctproto udp --ctorigdstport 5353 --ctreplsrc 198.51.100.10/32 --ctreplsrcport 53 -m comment --comment psnf:v1:dns:fwd:D -j ACCEPT",
            },
            Specs(Defs.Dns));
    }

    [Fact]
    public void None_mode_has_no_snat_rule()
    {
        var rules = RuleLayout.Render(Defs.SshDirect);
        Assert.Equal(new[] { ForwardPart.Dnat, ForwardPart.Forward }, rules.Select(r => r.Role));
        Assert.Equal("-d 203.0.113.1/32 -p tcp -m tcp --dport 2222 -m comment --comment psnf:v1:ssh.direct:dnat:none: -j DNAT --to-destination 198.51.100.20:22", rules[0].Spec);
        Assert.DoesNotContain(rules, r => r.Table == "nat" && r.Role != ForwardPart.Dnat);
        Assert.Equal(new[] { "PSNF-PRE-T08A", "PSNF-FWD-08A" }, rules.Select(r => r.Chain));
    }

    [Fact]
    public void Ipv6_uses_brackets_in_the_dnat_target_and_128_prefixes()
    {
        Assert.Equal(
            new[]
            {
                "nat/PSNF-PRE-T1F9/Dnat: -d 2001:db8:1::1/128 -p tcp -m tcp --dport 8080 -m comment --comment psnf:v1:web6:dnat:snat: -j DNAT --to-destination [2001:db8:2::10]:80",
                "nat/PSNF-POST-1F9/Snat: -d 2001:db8:2::10/128 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdst 2001:db8:1::1/128 --ctorigdstport 8080 -m comment --comment psnf:v1:web6:snat -j SNAT --to-source 2001:db8:2::1",
                "filter/PSNF-FWD-1F9/Forward: -m conntrack --ctstate DNAT --ctproto tcp --ctorigdst 2001:db8:1::1/128 --ctorigdstport 8080 --ctreplsrc 2001:db8:2::10/128 --ctreplsrcport 80 -m comment --comment psnf:v1:web6:fwd -j ACCEPT",
            },
            Specs(Defs.Web6));
    }

    [Theory]
    [MemberData(nameof(GoldenOwned))]
    public void Nat_rules_match_what_the_golden_dumps_hold_once_save_has_quoted_them(string backend, string file)
    {
        // DNAT rules come back verbatim apart from the quoted comment; SNAT rules also lose /32 on --ctorigdst.
        var golden = Golden.Parse(backend, file).GetTable("nat")!.Rules.Where(r => r.Chain.StartsWith("PSNF-", StringComparison.Ordinal)).Select(r => r.Spec).ToHashSet();
        var defs = file.Contains("v6", StringComparison.Ordinal) ? new[] { Defs.Web6 } : new[] { Defs.Web, Defs.Dns, Defs.SshDirect };
        foreach (var rule in defs.SelectMany(RuleLayout.Render).Where(r => r.Table == "nat"))
        {
            Assert.Contains(SaveText.Normalize(rule.Spec), golden);
        }
    }

    public static IEnumerable<object[]> GoldenOwned() =>
        from b in Golden.Backends from f in new[] { "owned.v4.save", "owned.v6.save", "owned-only.v4.save" } select new object[] { b, f };

    [Fact]
    public void Hooks_and_tags()
    {
        Assert.Equal(new[] { "nat/PREROUTING/PSNF-PREROUTING", "nat/OUTPUT/PSNF-OUTPUT", "nat/POSTROUTING/PSNF-POSTROUTING", "filter/FORWARD/PSNF-FORWARD" }, RuleLayout.Hooks.Select(h => $"{h.Table}/{h.BuiltinChain}/{h.Chain}"));
        Assert.Equal(RuleLayout.Output, RuleLayout.HookFor(ForwardPart.Local));
        Assert.Equal("-j PSNF-FORWARD", RuleLayout.Forward.JumpSpec);
        Assert.Equal(RuleLayout.PreRouting, RuleLayout.HookFor(ForwardPart.Dnat));
        Assert.Equal(RuleLayout.PostRouting, RuleLayout.HookFor(ForwardPart.Snat));
        Assert.Equal(RuleLayout.Forward, RuleLayout.HookFor(ForwardPart.Forward));
        Assert.Equal("psnf:v1:web:snat", ForwardTag.Tag("web", "snat"));
        Assert.Equal("psnf:v1:dns:dnat:masq:bG9jYWwgZG5z:D", RuleLayout.DnatTag(Defs.Dns));
        Assert.Equal("psnf:v1:web:dnat:snat:", RuleLayout.DnatTag(Defs.Web));
        Assert.Equal("psnf:v1:ssh.direct:dnat:none:", RuleLayout.DnatTag(Defs.SshDirect));
        var ex = Assert.Throws<PortForwardValidationException>(() => ForwardTag.Tag("a b", "snat"));
        Assert.Equal("InvalidName", ex.ErrorId);
    }

    [Fact]
    public void Dispatch_path_of_port_8080_is_three_levels_keyed_by_its_hex_digits()
    {
        var rules = RuleLayout.Render(Defs.Web);
        Assert.Equal(
            new[]
            {
                "PSNF-PREROUTING -> PSNF-PRE-T1: -p tcp -m tcp --dport 4096:8191 -j PSNF-PRE-T1",
                "PSNF-PRE-T1 -> PSNF-PRE-T1F: -p tcp -m tcp --dport 7936:8191 -j PSNF-PRE-T1F",
                "PSNF-PRE-T1F -> PSNF-PRE-T1F9: -p tcp -m tcp --dport 8080:8095 -j PSNF-PRE-T1F9",
            },
            rules[0].Path.Select(p => $"{p.Parent} -> {p.Chain}: {p.Spec}"));
        Assert.Equal(
            new[]
            {
                "PSNF-POSTROUTING -> PSNF-POST-1: -m conntrack --ctorigdstport 4096:8191 -j PSNF-POST-1",
                "PSNF-POST-1 -> PSNF-POST-1F: -m conntrack --ctorigdstport 7936:8191 -j PSNF-POST-1F",
                "PSNF-POST-1F -> PSNF-POST-1F9: -m conntrack --ctorigdstport 8080:8095 -j PSNF-POST-1F9",
            },
            rules[1].Path.Select(p => $"{p.Parent} -> {p.Chain}: {p.Spec}"));
        Assert.Equal(new[] { "PSNF-FWD-1", "PSNF-FWD-1F", "PSNF-FWD-1F9" }, rules[2].Path.Select(p => p.Chain));
        Assert.All(rules.SelectMany(r => r.Path), p => Assert.Equal(p.Table, p.Parent.StartsWith("PSNF-FWD", StringComparison.Ordinal) || p.Parent == "PSNF-FORWARD" ? "filter" : "nat"));
    }

    [Theory]
    [InlineData(1, 1, "PSNF-PRE-T000", "0:15")]
    [InlineData(65535, 65535, "PSNF-PRE-TFFF", "65520:65535")]
    [InlineData(8000, 8010, "PSNF-PRE-T1F4", "8000:8015")] // a range inside one leaf
    [InlineData(8000, 8100, "PSNF-PRE-T1F", "7936:8191")] // spans leaves: one level up
    [InlineData(4000, 4200, "PSNF-PREROUTING", null)] // spans the top buckets: in the hooked chain itself
    public void A_range_sits_at_the_deepest_level_that_holds_it(int low, int high, string chain, string? lastRange)
    {
        var path = RuleLayout.PathTo(RuleLayout.PreRouting, Protocol.Tcp, low, high);
        Assert.Equal(chain, path.Count == 0 ? RuleLayout.PreRouting.Chain : path[^1].Chain);
        if (lastRange is not null)
        {
            Assert.Contains("--dport " + lastRange + " ", path[^1].Spec);
        }

        // Every level's range holds the whole forward range and the next level's range.
        foreach (var step in path)
        {
            var range = step.Spec.Split(' ')[Array.IndexOf(step.Spec.Split(' '), "--dport") + 1].Split(':').Select(int.Parse).ToArray();
            Assert.True(range[0] <= low && high <= range[1], $"{step.Spec} does not hold {low}-{high}");
        }
    }

    [Fact]
    public void Udp_and_tcp_have_separate_prerouting_trees_but_share_postrouting_and_forward()
    {
        Assert.Equal("PSNF-PRE-U1F9", RuleLayout.PathTo(RuleLayout.PreRouting, Protocol.Udp, 8080, 8080)[^1].Chain);
        Assert.Equal("PSNF-OUT-T1F9", RuleLayout.PathTo(RuleLayout.Output, Protocol.Tcp, 8080, 8080)[^1].Chain);
        Assert.Equal(RuleLayout.PathTo(RuleLayout.PostRouting, Protocol.Udp, 8080, 8080), RuleLayout.PathTo(RuleLayout.PostRouting, Protocol.Tcp, 8080, 8080));
        Assert.Equal(RuleLayout.PathTo(RuleLayout.Forward, Protocol.Udp, 8080, 8080), RuleLayout.PathTo(RuleLayout.Forward, Protocol.Tcp, 8080, 8080));
    }

    [Theory]
    [InlineData("PSNF-PRE-T1F9", true)]
    [InlineData("PSNF-OUT-U1", true)]
    [InlineData("PSNF-POST-1F", true)]
    [InlineData("PSNF-FWD-1F9", true)]
    [InlineData("PSNF-PREROUTING", false)]
    [InlineData("PSNF-FORWARD", false)]
    [InlineData("DOCKER", false)]
    public void Dispatch_chains_are_recognised_by_name(string chain, bool dispatch)
    {
        Assert.Equal(dispatch, RuleLayout.IsDispatchChain(chain));
    }

    [Fact]
    public void Dispatch_target_is_only_a_bare_jump_to_a_dispatch_chain()
    {
        Assert.Equal("PSNF-FWD-1", RuleLayout.DispatchTarget("-m conntrack --ctorigdstport 4096:8191 -j PSNF-FWD-1"));
        Assert.Null(RuleLayout.DispatchTarget("-j PSNF-FORWARD"));
        Assert.Null(RuleLayout.DispatchTarget("-j DOCKER"));
        Assert.Null(RuleLayout.DispatchTarget("-m comment --comment psnf:v1:x:fwd -j PSNF-FWD-1"));
        Assert.Null(RuleLayout.DispatchTarget("-s 192.0.2.0/24 -j ACCEPT"));
    }

    [Fact]
    public void Extras_render_ranges_sources_interface_and_local_access()
    {
        var d = PortForwardDefinition.Create(
            "rng", Protocol.Udp, null, 8000, Defs.Ip("198.51.100.10"), 9000, SnatMode.Masquerade, null, null,
            new ForwardExtras(8010, 9010, new[] { PortForwardDefinition.ParseNetwork("192.0.2.0/24"), PortForwardDefinition.ParseNetwork("10.0.0.7") }, "wan+", IncludeLocal: true));
        Assert.Equal(
            new[]
            {
                "nat/PSNF-PRE-U1F4/Dnat: -s 10.0.0.7/32 -i wan+ -p udp -m udp --dport 8000:8010 -m addrtype --dst-type LOCAL -m comment --comment psnf:v1:rng:dnat:masq::LIS2 -j DNAT --to-destination 198.51.100.10:9000-9010/8000",
                "nat/PSNF-PRE-U1F4/Dnat: -s 192.0.2.0/24 -i wan+ -p udp -m udp --dport 8000:8010 -m addrtype --dst-type LOCAL -m comment --comment psnf:v1:rng:dnat:masq::LIS2 -j DNAT --to-destination 198.51.100.10:9000-9010/8000",
                "nat/PSNF-OUT-U1F4/Local: -p udp -m udp --dport 8000:8010 -m addrtype --dst-type LOCAL -m comment --comment psnf:v1:rng:local:LIS2 -j DNAT --to-destination 198.51.100.10:9000-9010/8000",
                "nat/PSNF-POST-1F4/Snat: -d 198.51.100.10/32 -p udp -m udp --dport 9000:9010 -m conntrack --ctstate DNAT --ctorigdstport 8000:8010 -m comment --comment psnf:v1:rng:snat:LIS2 -j MASQUERADE",
                "filter/PSNF-FWD-1F4/Forward: -m conntrack --ctstate DNAT --ctproto udp --ctorigdstport 8000:8010 --ctreplsrc 198.51.100.10/32 --ctreplsrcport 9000:9010 -m comment --comment psnf:v1:rng:fwd:LIS2 -j ACCEPT",
            },
            Specs(d));
    }

    [Fact]
    public void Interface_starting_with_a_dash_round_trips_or_is_refused()
    {
        PortForwardDefinition def;
        try
        {
            def = PortForwardDefinition.Create("i", Protocol.Tcp, null, 8080, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, null, new ForwardExtras(InInterface: "-x"));
        }
        catch (PortForwardValidationException ex)
        {
            Assert.Equal("InvalidInterface", ex.ErrorId);
            return;
        }

        Assert.Equal("-x", RoundTrip(def).InInterface);
    }

    [Fact]
    public void Ipv4_mapped_source_network_is_refused_or_round_trips()
    {
        PortForwardDefinition def;
        try
        {
            def = PortForwardDefinition.Create("m", Protocol.Tcp, null, 8080, Defs.Ip("2001:db8:2::10"), null, SnatMode.None, null, null,
                new ForwardExtras(SourceAddresses: new[] { new System.Net.IPNetwork(Defs.Ip("::ffff:192.0.2.0"), 120) }));
        }
        catch (PortForwardValidationException)
        {
            return;
        }

        var state = ForwardReader.Read(IptablesSaveParser.Parse(SaveText.Wrap(RuleLayout.Render(def), normalize: true), IpFamily.IPv6), null);
        Assert.Empty(state.Warnings);
        Assert.Equal(def, Assert.Single(state.Forwards).Definition);
    }

    [Fact]
    public void Range_to_a_single_internal_port_has_no_shift()
    {
        var d = PortForwardDefinition.Create("one", Protocol.Tcp, null, 8000, Defs.Ip("198.51.100.10"), 80, SnatMode.None, null, null, new ForwardExtras(ExternalPortEnd: 8010));
        var dnat = RuleLayout.Render(d)[0].Spec;
        Assert.EndsWith("--to-destination 198.51.100.10:80", dnat);
        Assert.Contains("--dport 8000:8010", dnat);
        Assert.Equal("8000:8010", ForwardTag.PortSpec(8000, 8010, ':'));
        Assert.Equal("80", ForwardTag.PortSpec(80, 80, ':'));
    }

    [Theory]
    [InlineData(SnatMode.Snat, "snat")]
    [InlineData(SnatMode.Masquerade, "masq")]
    [InlineData(SnatMode.None, "none")]
    public void Mode_codes_round_trip(SnatMode mode, string code)
    {
        Assert.Equal(code, ForwardTag.ModeCode(mode));
        Assert.Equal(mode, ForwardTag.ParseModeCode(code));
    }

    [Fact]
    public void Unknown_mode_code_is_null()
    {
        Assert.Null(ForwardTag.ParseModeCode("SNAT"));
        Assert.Null(ForwardTag.ParseModeCode(string.Empty));
    }

    [Theory]
    [InlineData("local dns", "bG9jYWwgZG5z")]
    [InlineData("a", "YQ")]
    [InlineData("ab", "YWI")]
    [InlineData("abc", "YWJj")]
    [InlineData("\u00ff\u00fe", "w7_Dvg")] // bytes c3 bf c3 be: base64 "w7/Dvg", url-safe "w7_Dvg"
    [InlineData(">>>?", "Pj4-Pw")] // base64 "Pj4+Pw=="
    public void Description_is_base64url_without_padding(string description, string encoded)
    {
        Assert.Equal(encoded, ForwardTag.EncodeDescription(description));
        Assert.Equal(description, ForwardTag.DecodeDescription(encoded));
    }

    [Theory]
    [InlineData("Ünïcödé – ß ∑ 日本語")]
    [InlineData("say \"hi\" and it's a back\\slash")]
    [InlineData("line one\nline two\r\n\tTab")]
    [InlineData("psnf:v1:evil:dnat:none: -j ACCEPT")]
    [InlineData("\0")]
    public void Descriptions_round_trip_through_the_encoding(string description)
    {
        var encoded = ForwardTag.EncodeDescription(description);
        Assert.Matches("^[A-Za-z0-9_-]+$", encoded);
        Assert.Equal(description, ForwardTag.DecodeDescription(encoded));
        var def = PortForwardDefinition.Create("d", Protocol.Tcp, null, 80, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, description);
        Assert.Equal(description, RoundTrip(def).Description);
    }

    [Fact]
    public void Description_with_an_emoji_round_trips()
    {
        const string description = "web 🚀 server";
        var def = PortForwardDefinition.Create("d", Protocol.Tcp, null, 80, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, description);
        Assert.Equal(description, RoundTrip(def).Description);
    }

    [Fact]
    public void Unpaired_surrogate_is_refused()
    {
        var ex = Assert.Throws<PortForwardValidationException>(() =>
            PortForwardDefinition.Create("d", Protocol.Tcp, null, 80, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, "x\uD800y"));
        Assert.Equal("InvalidDescription", ex.ErrorId);
    }

    [Fact]
    public void Empty_and_invalid_encodings_decode_to_null()
    {
        Assert.Null(ForwardTag.DecodeDescription(string.Empty));
        Assert.Null(ForwardTag.DecodeDescription("!!!"));
        Assert.Null(ForwardTag.DecodeDescription("_w")); // 0xff: not UTF-8
        Assert.Equal(string.Empty, ForwardTag.EncodeDescription(null));
        Assert.Equal(string.Empty, ForwardTag.EncodeDescription(string.Empty));
    }

    [Fact]
    public void Description_limit_is_120_utf8_bytes()
    {
        var ip = Defs.Ip("198.51.100.10");
        var ascii120 = new string('x', 120);
        var twoByte60 = new string('é', 60); // 120 bytes
        Assert.Equal(ascii120, PortForwardDefinition.Create("d", Protocol.Tcp, null, 80, ip, null, SnatMode.None, null, ascii120).Description);
        Assert.Equal(120, Encoding.UTF8.GetByteCount(twoByte60));
        Assert.Equal(twoByte60, RoundTrip(PortForwardDefinition.Create("d", Protocol.Tcp, null, 80, ip, null, SnatMode.None, null, twoByte60)).Description);

        foreach (var tooLong in new[] { new string('x', 121), new string('é', 60) + "x", new string('€', 41) /* 123 bytes */ })
        {
            var ex = Assert.Throws<PortForwardValidationException>(() => PortForwardDefinition.Create("d", Protocol.Tcp, null, 80, ip, null, SnatMode.None, null, tooLong));
            Assert.Equal("DescriptionTooLong", ex.ErrorId);
        }
    }

    [Fact]
    public void Longest_dnat_comment_fits_the_kernel_limit()
    {
        var name = new string('n', PortForwardDefinition.MaxNameLength);
        var sources = Enumerable.Range(0, PortForwardDefinition.MaxSources).Select(i => new System.Net.IPNetwork(Defs.Ip($"10.0.{i}.0"), 24)).ToList();
        var def = PortForwardDefinition.Create(name, Protocol.Tcp, null, 80, Defs.Ip("198.51.100.10"), null, SnatMode.Masquerade, null, new string('\u00e9', 60),
            new ForwardExtras(SourceAddresses: sources, InInterface: "eth0", IncludeLocal: true));
        var tag = RuleLayout.DnatTag(def);
        Assert.True(tag.Length <= 255, $"comment is {tag.Length} bytes; the kernel keeps 255");
        Assert.Equal(def, RoundTrip(def));
    }

    public static IEnumerable<object[]> RoundTripCases()
    {
        yield return new object[] { Defs.Web };
        yield return new object[] { Defs.Dns };
        yield return new object[] { Defs.SshDirect };
        yield return new object[] { Defs.Web6 };
        yield return new object[] { PortForwardDefinition.Create(null, Protocol.Udp, Defs.Ip("2001:db8::5"), 53, Defs.Ip("2001:db8:2::53"), 5353, SnatMode.Masquerade, null, "v6 dns") };
        yield return new object[] { PortForwardDefinition.Create("x", Protocol.Tcp, null, 1, Defs.Ip("10.0.0.1"), 65535, SnatMode.Snat, Defs.Ip("10.0.0.254"), "a:b\"c\"") };
        yield return new object[] { PortForwardDefinition.Create("y", Protocol.Udp, Defs.Ip("::"), 65535, Defs.Ip("fe80::1"), 1, SnatMode.None, null, "  ") };
        yield return new object[]
        {
            PortForwardDefinition.Create(
                "rng", Protocol.Udp, null, 8000, Defs.Ip("198.51.100.10"), 9000, SnatMode.Masquerade, null, "r",
                new ForwardExtras(8010, 9010, new[] { PortForwardDefinition.ParseNetwork("192.0.2.0/24"), PortForwardDefinition.ParseNetwork("10.0.0.7") }, "wan+", IncludeLocal: true)),
        };
        yield return new object[] { PortForwardDefinition.Create("wide6", Protocol.Tcp, Defs.Ip("2001:db8:1::1"), 4000, Defs.Ip("2001:db8:2::10"), 80, SnatMode.Snat, Defs.Ip("2001:db8:2::1"), null, new ForwardExtras(4200, null, new[] { PortForwardDefinition.ParseNetwork("2001:db8:9::/48") }, "eth0")) };
        yield return new object[] { PortForwardDefinition.Create("lo", Protocol.Tcp, null, 8081, Defs.Ip("127.0.0.1"), 80, SnatMode.None, null, null, new ForwardExtras(InInterface: "eth0", IncludeLocal: true)) };
    }

    [Theory]
    [MemberData(nameof(RoundTripCases))]
    public void Render_then_parse_and_read_gives_the_same_definition(PortForwardDefinition def)
    {
        foreach (var normalize in new[] { false, true })
        {
            foreach (var counters in new[] { false, true })
            {
                var text = SaveText.Wrap(RuleLayout.Render(def), normalize, counters);
                var state = ForwardReader.Read(IptablesSaveParser.Parse(text, def.Family), null);
                var f = Assert.Single(state.Forwards);
                Assert.Equal(def, f.Definition);
                Assert.Equal(def.Description, f.Description);
                Assert.Equal("Complete", f.Status);
                Assert.Empty(state.Warnings);
                Assert.Empty(state.UntaggedRules);
            }
        }
    }

    [Fact]
    public void Several_forwards_in_one_dump_read_back_each_one()
    {
        var defs = new[] { Defs.Web, Defs.Dns, Defs.SshDirect, Defs.Simple("m1", 9000), Defs.Simple("s1", 9001, SnatMode.Snat) };
        var state = ForwardReader.Read(IptablesSaveParser.Parse(SaveText.Wrap(defs.SelectMany(RuleLayout.Render), normalize: true), IpFamily.IPv4), null);
        Assert.Equal(defs.OrderBy(d => d.Name, StringComparer.Ordinal), state.Forwards.Select(f => f.Definition));
    }

    internal static PortForwardDefinition RoundTrip(PortForwardDefinition def)
    {
        var state = ForwardReader.Read(IptablesSaveParser.Parse(SaveText.Wrap(RuleLayout.Render(def), normalize: true), def.Family), null);
        Assert.Empty(state.Warnings);
        return Assert.Single(state.Forwards).Definition;
    }
}
