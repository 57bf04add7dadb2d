using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

public class ForwardReaderTests
{
    public static IEnumerable<object[]> Backends() => Golden.BackendsData();

    public static IEnumerable<object[]> OwnedV4() =>
        from b in Golden.Backends from f in new[] { "owned.v4.save", "owned-only.v4.save" } select new object[] { b, f };

    [Theory]
    [MemberData(nameof(OwnedV4))]
    public void Owned_v4_dumps_rebuild_web_dns_and_ssh_direct(string backend, string file)
    {
        var state = ForwardReader.Read(Golden.Parse(backend, file), "ns1");

        Assert.Equal(new[] { "dns", "ssh.direct", "web" }, state.Forwards.Select(f => f.Name));
        Assert.Empty(state.Warnings);
        Assert.Empty(state.UntaggedRules);
        Assert.Equal(IpFamily.IPv4, state.Family);
        Assert.All(state.Forwards, f =>
        {
            Assert.Equal("Complete", f.Status);
            Assert.Empty(f.MissingRules);
            Assert.Empty(f.DuplicateRules);
            Assert.Equal("ns1", f.NetworkNamespace);
            Assert.Equal(IpFamily.IPv4, f.Family);
            Assert.Equal((0UL, 0UL), (f.Packets, f.Bytes));
            Assert.False(f.Persisted);
        });

        var dns = state.Forwards[0];
        Assert.Equal(Defs.Dns, dns.Definition);
        Assert.Equal(Protocol.Udp, dns.Protocol);
        Assert.Null(dns.ExternalAddress);
        Assert.Equal(5353, dns.ExternalPort);
        Assert.Equal(Defs.Ip("198.51.100.10"), dns.InternalAddress);
        Assert.Equal(53, dns.InternalPort);
        Assert.Equal(SnatMode.Masquerade, dns.SnatMode);
        Assert.Null(dns.SnatAddress);
        Assert.Equal("local dns", dns.Description);
        Assert.Equal("*:5353", dns.ExternalEndpoint);
        Assert.Equal("masquerade", dns.SourceNat);

        var ssh = state.Forwards[1];
        Assert.Equal(Defs.SshDirect, ssh.Definition);
        Assert.Equal(SnatMode.None, ssh.SnatMode);
        Assert.Equal("203.0.113.1:2222", ssh.ExternalEndpoint);
        Assert.Equal("198.51.100.20:22", ssh.InternalEndpoint);
        Assert.Null(ssh.Description);
        Assert.Equal(2, state.RulesOf[ssh.Name].Count); // no SNAT rule for SnatMode None
        Assert.Equal("iptables", ssh.Backend);

        var web = state.Forwards[2];
        Assert.Equal(Defs.Web, web.Definition);
        Assert.Equal(Protocol.Tcp, web.Protocol);
        Assert.Equal(Defs.Ip("203.0.113.1"), web.ExternalAddress);
        Assert.Equal(8080, web.ExternalPort);
        Assert.Equal(Defs.Ip("198.51.100.1"), web.SnatAddress);
        Assert.Equal("snat 198.51.100.1", web.SourceNat);
        Assert.Equal("web Tcp 203.0.113.1:8080 -> 198.51.100.10:8080 snat 198.51.100.1", web.ToString());
        Assert.Equal(new[] { ForwardPart.Dnat, ForwardPart.Snat, ForwardPart.Forward }, state.RulesOf[web.Name].Select(r => r.Role).Order());
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Owned_v6_dump_rebuilds_web6(string backend)
    {
        var state = ForwardReader.Read(Golden.Parse(backend, "owned.v6.save"), null);

        var web6 = Assert.Single(state.Forwards);
        Assert.Equal(Defs.Web6, web6.Definition);
        Assert.Equal(IpFamily.IPv6, web6.Family);
        Assert.Equal("Complete", web6.Status);
        Assert.Equal("[2001:db8:1::1]:8080", web6.ExternalEndpoint);
        Assert.Equal("[2001:db8:2::10]:80", web6.InternalEndpoint);
        Assert.Equal("snat 2001:db8:2::1", web6.SourceNat);
        Assert.Null(web6.NetworkNamespace);
        Assert.Empty(state.Warnings);
        Assert.Empty(state.UntaggedRules);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Drift_shows_web_missing_its_snat_rule(string backend)
    {
        var state = ForwardReader.Read(Golden.Parse(backend, "owned-drift.v4.save"), null);

        Assert.Equal(new[] { "dns", "ssh.direct", "web" }, state.Forwards.Select(f => f.Name));
        var web = state.Forwards.Single(f => f.Name == "web");
        Assert.Equal(new[] { ForwardPart.Snat }, web.MissingRules);
        Assert.Empty(web.DuplicateRules);
        Assert.NotEqual("Complete", web.Status);
        Assert.Contains("Snat", web.Status);
        Assert.StartsWith("Incomplete", web.Status);
        Assert.Equal(SnatMode.Snat, web.SnatMode);
        Assert.Null(web.SnatAddress); // the address lived in the deleted rule
        Assert.Equal(Defs.Ip("198.51.100.10"), web.InternalAddress);
        Assert.All(state.Forwards.Where(f => f.Name != "web"), f => Assert.Equal("Complete", f.Status));
        Assert.Empty(state.Warnings);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Foreign_only_dumps_yield_no_forward(string backend)
    {
        foreach (var file in new[] { "foreign-only.v4.save", "foreign-only.v6.save" })
        {
            var state = ForwardReader.Read(Golden.Parse(backend, file), null);
            Assert.Empty(state.Forwards);
            Assert.Empty(state.UntaggedRules);
            Assert.Empty(state.Warnings);
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Forwards_are_built_only_from_rules_in_psnf_chains(string backend)
    {
        var rs = Golden.Parse(backend, "owned.v4.save");
        var state = ForwardReader.Read(rs, null);
        var used = state.Forwards.SelectMany(f => state.RulesOf[f.Name]).Select(r => r.Line).ToList();

        Assert.Equal(8, used.Count);
        Assert.All(used, l => Assert.StartsWith("PSNF-", l.Chain));
        var all = rs.Tables.SelectMany(t => t.Rules).ToList();
        Assert.Equal(all.Count(r => r.Chain.StartsWith("PSNF-", StringComparison.Ordinal)), used.Count);
    }

    [Fact]
    public void A_psnf_tag_in_a_foreign_chain_is_not_a_forward()
    {
        // Someone copied a module rule into their own chain: it is not ours to read or delete.
        var rules = RuleLayout.Render(Defs.Web).Select(r => r with { Chain = "MY-" + r.Chain }).ToList();
        var text = "*nat\n:MY-PSNF-PREROUTING - [0:0]\n:MY-PSNF-POSTROUTING - [0:0]\n"
            + string.Concat(rules.Where(r => r.Table == "nat").Select(r => $"-A {r.Chain} {r.Spec}\n")) + "COMMIT\n"
            + "*filter\n:MY-PSNF-FORWARD - [0:0]\n"
            + string.Concat(rules.Where(r => r.Table == "filter").Select(r => $"-A {r.Chain} {r.Spec}\n")) + "COMMIT\n";
        var state = ForwardReader.Read(IptablesSaveParser.Parse(text, IpFamily.IPv4), null);

        Assert.Empty(state.Forwards);
        Assert.Empty(state.UntaggedRules);
        Assert.Empty(state.Warnings);
    }

    [Fact]
    public void Untagged_and_unreadable_rules_in_psnf_chains_are_reported_not_read()
    {
        var text = Golden.Read("nft", "owned-only.v4.save").Replace(
            "COMMIT\n*nat",
            "[0:0] -A PSNF-FORWARD -s 192.0.2.0/24 -j ACCEPT\n[0:0] -A PSNF-FORWARD -m comment --comment \"psnf:v1:bad name:fwd\" -j ACCEPT\nCOMMIT\n*nat",
            StringComparison.Ordinal);
        var state = ForwardReader.Read(IptablesSaveParser.Parse(text, IpFamily.IPv4), null);

        Assert.Equal(new[] { "dns", "ssh.direct", "web" }, state.Forwards.Select(f => f.Name));
        var untagged = Assert.Single(state.UntaggedRules);
        Assert.Equal("-s 192.0.2.0/24 -j ACCEPT", untagged.Spec);
        Assert.Equal(4, untagged.Position);
        var warning = Assert.Single(state.Warnings);
        Assert.Contains("bad name", warning);
    }

    [Fact]
    public void Duplicated_rules_and_forward_counters_are_reported()
    {
        var text = Golden.Read("nft", "owned-only.v4.save");
        var fwdLine = text.Split('\n').Single(l => l.Contains("psnf:v1:web:fwd", StringComparison.Ordinal));
        text = text.Replace(fwdLine, fwdLine.Replace("[0:0]", "[10:1000]", StringComparison.Ordinal) + "\n" + fwdLine.Replace("[0:0]", "[5:500]", StringComparison.Ordinal), StringComparison.Ordinal);
        var state = ForwardReader.Read(IptablesSaveParser.Parse(text, IpFamily.IPv4), null);
        var web = state.Forwards.Single(f => f.Name == "web");

        Assert.Equal(new[] { ForwardPart.Forward }, web.DuplicateRules);
        Assert.Empty(web.MissingRules);
        Assert.Equal("Incomplete: duplicated Forward", web.Status);
        Assert.Equal(15UL, web.Packets);
        Assert.Equal(1500UL, web.Bytes);
        Assert.Equal(4, state.RulesOf[web.Name].Count);
    }

    [Fact]
    public void A_forward_with_only_its_forward_rule_is_rebuilt_from_conntrack_options()
    {
        var text = Golden.Read("nft", "owned-only.v4.save");
        var kept = text.Split('\n').Where(l => !(l.Contains("psnf:v1:web:", StringComparison.Ordinal) && !l.Contains("web:fwd", StringComparison.Ordinal)));
        var web = ForwardReader.Read(IptablesSaveParser.Parse(string.Join('\n', kept), IpFamily.IPv4), null).Forwards.Single(f => f.Name == "web");

        // Without DNAT and SNAT rules nothing says which SNAT mode it had: it reads as None, missing Dnat.
        Assert.Equal(new[] { ForwardPart.Dnat }, web.MissingRules);
        Assert.Equal((Protocol.Tcp, 8080, 8080), (web.Protocol, web.ExternalPort, web.InternalPort));
        Assert.Equal(Defs.Ip("203.0.113.1"), web.ExternalAddress);
        Assert.Equal(Defs.Ip("198.51.100.10"), web.InternalAddress);
    }

    [Fact]
    public void IsPersisted_marks_forwards()
    {
        var state = ForwardReader.Read(Golden.Parse("nft", "owned-only.v4.save"), null, n => n == "dns");
        Assert.Equal(new[] { true, false, false }, state.Forwards.Select(f => f.Persisted));
    }
}
