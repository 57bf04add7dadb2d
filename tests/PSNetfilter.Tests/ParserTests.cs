using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

public class ParserTests
{
    public static IEnumerable<object[]> AllGolden() => Golden.All();

    public static IEnumerable<object[]> Backends() => Golden.BackendsData();

    [Theory]
    [MemberData(nameof(AllGolden))]
    public void Every_golden_dump_parses_with_the_tables_it_holds(string backend, string file)
    {
        var ruleset = Golden.Parse(backend, file);

        var expected = file switch
        {
            "foreign-only.v4.save" or "owned.v4.save" or "owned-drift.v4.save" => new[] { "filter", "mangle", "nat", "raw" },
            "foreign-only.v6.save" or "owned.v6.save" => new[] { "filter", "nat", "raw" },
            "owned-only.v4.save" => new[] { "filter", "nat" },
            _ => throw new InvalidOperationException(file),
        };
        Assert.Equal(expected, ruleset.Tables.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal(Golden.FamilyOf(file), ruleset.Family);
    }

    [Theory]
    [MemberData(nameof(AllGolden))]
    public void Every_rule_line_is_kept_byte_for_byte_with_its_line_number(string backend, string file)
    {
        var text = Golden.Read(backend, file);
        var lines = text.Split('\n');
        var ruleset = Golden.Parse(backend, file);
        var rules = ruleset.Tables.SelectMany(t => t.Rules).ToList();

        // One RuleLine per "-A" line of the dump, none invented, none lost.
        Assert.Equal(lines.Count(l => l.StartsWith("[", StringComparison.Ordinal)), rules.Count);
        foreach (var r in rules)
        {
            Assert.Equal(lines[r.LineNumber - 1], $"[{r.Packets}:{r.Bytes}] -A {r.Chain} {r.Spec}");
        }
    }

    [Theory]
    [MemberData(nameof(AllGolden))]
    public void Positions_count_from_one_within_each_chain_in_dump_order(string backend, string file)
    {
        var ruleset = Golden.Parse(backend, file);
        foreach (var table in ruleset.Tables)
        {
            foreach (var chain in table.Rules.GroupBy(r => r.Chain))
            {
                Assert.Equal(Enumerable.Range(1, chain.Count()), chain.Select(r => r.Position));
                Assert.True(chain.Select(r => r.LineNumber).SequenceEqual(chain.Select(r => r.LineNumber).Order()));
            }

            // Every rule names its own table and a chain the table declares.
            Assert.All(table.Rules, r =>
            {
                Assert.Equal(table.Name, r.Table);
                Assert.True(table.HasChain(r.Chain), $"{table.Name}/{r.Chain} is not declared");
            });
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Chains_policies_and_counters_of_owned_v4(string backend)
    {
        var ruleset = Golden.Parse(backend, "owned.v4.save");
        var filter = ruleset.GetTable("filter")!;
        var nat = ruleset.GetTable("nat")!;

        Assert.Equal(new ChainInfo("FORWARD", "DROP", 0, 0), filter.GetChain("FORWARD"));
        Assert.Equal(new ChainInfo("INPUT", "ACCEPT", 0, 0), filter.GetChain("INPUT"));
        Assert.True(filter.GetChain("FORWARD")!.IsBuiltin);
        Assert.Equal(new ChainInfo("PSNF-FORWARD", "-", 0, 0), filter.GetChain("PSNF-FORWARD"));
        Assert.False(filter.GetChain("PSNF-FORWARD")!.IsBuiltin);
        Assert.Equal(36, filter.Chains.Count);
        Assert.Equal(21, nat.Chains.Count);
        Assert.True(nat.HasChain("PSNF-PREROUTING"));
        Assert.True(nat.HasChain("PSNF-POSTROUTING"));
        Assert.False(nat.HasChain("PSNF-FORWARD"));
        Assert.Null(ruleset.GetTable("security"));
        Assert.Empty(ruleset.Table("security").Rules);
        Assert.All(ruleset.Tables.SelectMany(t => t.Rules), r => Assert.Equal((0UL, 0UL), (r.Packets, r.Bytes)));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Positions_of_jumps_and_owned_rules(string backend)
    {
        var ruleset = Golden.Parse(backend, "owned.v4.save");
        var nat = ruleset.GetTable("nat")!;
        var filter = ruleset.GetTable("filter")!;

        var prerouting = nat.Rules.Where(r => r.Chain == "PREROUTING").ToList();
        Assert.Equal(new[] { "-j PSNF-PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER" }, prerouting.Take(2).Select(r => r.Spec));
        Assert.Equal(new[] { 1, 2, 3 }, prerouting.Select(r => r.Position));

        var postrouting = nat.Rules.Where(r => r.Chain == "POSTROUTING").ToList();
        Assert.Equal((1, "-j PSNF-POSTROUTING"), (postrouting[0].Position, postrouting[0].Spec));
        Assert.Equal((2, "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"), (postrouting[1].Position, postrouting[1].Spec));

        var forward = filter.Rules.Where(r => r.Chain == "FORWARD").ToList();
        Assert.Equal((1, "-j PSNF-FORWARD"), (forward[0].Position, forward[0].Spec));
        Assert.Equal((2, "-j DOCKER-USER"), (forward[1].Position, forward[1].Spec));
        Assert.Equal(14, forward.Count);

        var pre = nat.Rules.Where(r => r.Chain == "PSNF-PREROUTING").ToList();
        Assert.Equal(3, pre.Count);
        Assert.Contains("psnf:v1:web:dnat:snat:", pre[0].Spec);
        Assert.Contains("psnf:v1:dns:dnat:masq:bG9jYWwgZG5z", pre[1].Spec);
        Assert.Contains("psnf:v1:ssh.direct:dnat:none:", pre[2].Spec);
        Assert.Equal(new[] { 1, 2, 3 }, pre.Select(r => r.Position));

        var post = nat.Rules.Where(r => r.Chain == "PSNF-POSTROUTING").ToList();
        Assert.Equal(new[] { 1, 2 }, post.Select(r => r.Position));
        Assert.Contains("psnf:v1:web:snat", post[0].Spec);
        Assert.Contains("psnf:v1:dns:snat", post[1].Spec);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Drift_dump_renumbers_the_remaining_postrouting_rule(string backend)
    {
        var post = Golden.Parse(backend, "owned-drift.v4.save").GetTable("nat")!.Rules.Where(r => r.Chain == "PSNF-POSTROUTING").ToList();
        var only = Assert.Single(post);
        Assert.Equal(1, only.Position);
        Assert.Contains("psnf:v1:dns:snat", only.Spec);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Foreign_specs_with_quotes_and_spaces_are_untouched(string backend)
    {
        var ruleset = Golden.Parse(backend, "foreign-only.v4.save");
        var specs = ruleset.Tables.SelectMany(t => t.Rules).Select(r => r.Spec).ToList();

        Assert.Contains("-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS", specs);
        Assert.Contains("-m comment --comment \"it\\'s a \\\"quoted\\\" comment with a back\\\\slash\" -j RETURN", specs);
        Assert.Contains("-m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix \"[UFW BLOCK] \"", specs);
        Assert.Contains("-m bpf --bytecode \"4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0\" -j RETURN", specs);
        Assert.Contains("-m comment --comment \"default/web:http -> 10.244.1.5:8080\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-IT2ZTR26TO4XFPTO", specs);
        var kube = ruleset.GetTable("nat")!.Rules.Single(r => r.Spec.Contains("NOTE: this must", StringComparison.Ordinal));
        Assert.Equal("KUBE-SERVICES", kube.Chain);
        Assert.Equal(3, kube.Position);
    }

    [Theory]
    [InlineData("foreign-only.v4.save", "owned.v4.save")]
    [InlineData("foreign-only.v6.save", "owned.v6.save")]
    public void Foreign_rules_are_the_same_with_and_without_owned_rules(string foreign, string owned)
    {
        foreach (var backend in Golden.Backends)
        {
            static IEnumerable<string> Foreign(Ruleset rs) =>
                rs.Tables.SelectMany(t => t.Rules)
                    .Where(r => !r.Chain.StartsWith("PSNF-", StringComparison.Ordinal) && !r.Spec.StartsWith("-j PSNF-", StringComparison.Ordinal))
                    .Select(r => $"{r.Table}/{r.Chain}#{r.Spec}");

            var a = Foreign(Golden.Parse(backend, foreign)).ToList();
            var b = Foreign(Golden.Parse(backend, owned)).ToList();
            Assert.NotEmpty(a);
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void Nft_and_legacy_print_the_same_text_per_table()
    {
        foreach (var file in Golden.Files)
        {
            var nft = Golden.Parse("nft", file);
            var legacy = Golden.Parse("legacy", file);
            foreach (var t in nft.Tables)
            {
                var l = legacy.GetTable(t.Name)!;
                Assert.Equal(t.Rules.Select(r => (r.Chain, r.Position, r.Spec)), l.Rules.Select(r => (r.Chain, r.Position, r.Spec)));
                Assert.Equal(t.Chains.OrderBy(c => c.Name, StringComparer.Ordinal), l.Chains.OrderBy(c => c.Name, StringComparer.Ordinal));
            }
        }
    }

    [Fact]
    public void Counters_on_chains_and_rules_are_read()
    {
        const string text = """
            # Generated by iptables-nft-save v1.8.9 (nf_tables) on Thu Jan  1 00:00:00 2026
            # Warning: iptables-legacy tables present, use iptables-legacy-save to see them
            *filter
            :INPUT ACCEPT [123:45678]
            :FORWARD DROP [18446744073709551615:0]
            :PSNF-FORWARD - [0:0]
            [7:420] -A FORWARD -j PSNF-FORWARD
            [18446744073709551615:18446744073709551614] -A PSNF-FORWARD -j ACCEPT
            COMMIT
            # Completed on Thu Jan  1 00:00:00 2026
            """;
        var filter = IptablesSaveParser.Parse(text, IpFamily.IPv4).GetTable("filter")!;

        Assert.Equal(new ChainInfo("INPUT", "ACCEPT", 123, 45678), filter.GetChain("INPUT"));
        Assert.Equal(ulong.MaxValue, filter.GetChain("FORWARD")!.Packets);
        Assert.Equal(new RuleLine("filter", "FORWARD", 1, "-j PSNF-FORWARD", 7, 420, 7), filter.Rules[0]);
        Assert.Equal(new RuleLine("filter", "PSNF-FORWARD", 1, "-j ACCEPT", ulong.MaxValue, ulong.MaxValue - 1, 8), filter.Rules[1]);
    }

    [Fact]
    public void Dump_without_counters_and_with_crlf_parses()
    {
        const string text = "*nat\r\n:PREROUTING ACCEPT [0:0]\r\n:PSNF-PREROUTING - [0:0]\r\n-A PREROUTING -j PSNF-PREROUTING\r\n-A PREROUTING -j ACCEPT\r\nCOMMIT\r\n";
        var nat = IptablesSaveParser.Parse(text, IpFamily.IPv4).GetTable("nat")!;

        Assert.Equal(new[] { "-j PSNF-PREROUTING", "-j ACCEPT" }, nat.Rules.Select(r => r.Spec));
        Assert.Equal(new[] { 1, 2 }, nat.Rules.Select(r => r.Position));
        Assert.All(nat.Rules, r => Assert.Equal((0UL, 0UL), (r.Packets, r.Bytes)));
        Assert.Equal("PREROUTING", nat.Rules[0].Chain);
    }

    [Fact]
    public void Chain_line_without_counters_has_zero_counters()
    {
        var filter = IptablesSaveParser.Parse("*filter\n:INPUT ACCEPT\nCOMMIT\n", IpFamily.IPv4).GetTable("filter")!;
        Assert.Equal(new ChainInfo("INPUT", "ACCEPT", 0, 0), filter.GetChain("INPUT"));
    }

    [Fact]
    public void Empty_dump_has_no_tables_and_empty_stand_ins()
    {
        var rs = IptablesSaveParser.Parse(string.Empty, IpFamily.IPv6);
        Assert.Empty(rs.Tables);
        Assert.Equal(IpFamily.IPv6, rs.Family);
        Assert.Empty(rs.Table("nat").Rules);
        Assert.False(rs.Table("nat").HasChain("PREROUTING"));
    }

    [Fact]
    public void Positions_restart_in_each_table()
    {
        const string text = "*nat\n:X - [0:0]\n-A X -j RETURN\n-A X -j RETURN\nCOMMIT\n*filter\n:X - [0:0]\n-A X -j RETURN\nCOMMIT\n";
        var rs = IptablesSaveParser.Parse(text, IpFamily.IPv4);
        Assert.Equal(new[] { 1, 2 }, rs.GetTable("nat")!.Rules.Select(r => r.Position));
        Assert.Equal(new[] { 1 }, rs.GetTable("filter")!.Rules.Select(r => r.Position));
        Assert.Equal(8, rs.GetTable("filter")!.Rules[0].LineNumber);
    }

    [Theory]
    [InlineData("-A INPUT -j ACCEPT\n", 1, "rule before any table")]
    [InlineData("\n# comment\n[0:0] -A INPUT -j ACCEPT\n", 3, "rule before any table")]
    [InlineData(":INPUT ACCEPT [0:0]\n", 1, "chain before any table")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT", 3, "has no COMMIT")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n[x:0] -A INPUT -j ACCEPT\nCOMMIT\n", 3, "malformed counters")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n[-1:0] -A INPUT -j ACCEPT\nCOMMIT\n", 3, "malformed counters")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n[1:2:3] -A INPUT -j ACCEPT\nCOMMIT\n", 3, "malformed counters")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n[18446744073709551616:0] -A INPUT -j ACCEPT\nCOMMIT\n", 3, "malformed counters")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n[0:0 -A INPUT -j ACCEPT\nCOMMIT\n", 3, "unterminated counters")]
    [InlineData("*filter\n:INPUT ACCEPT [0]\nCOMMIT\n", 2, "malformed counters")]
    [InlineData("*filter\n:INPUT ACCEPT 0:0\nCOMMIT\n", 2, "malformed counters")]
    [InlineData("*filter\n:INPUT\nCOMMIT\n", 2, "chain line without policy")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n-I INPUT 1 -j ACCEPT\nCOMMIT\n", 3, "does not start with -A")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n[0:0] -D INPUT -j ACCEPT\nCOMMIT\n", 3, "does not start with -A")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\nCOMMITTED\n", 3, "unexpected line")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\niptables: bad\nCOMMIT\n", 3, "unexpected line")]
    public void Malformed_input_throws_with_the_line_number(string text, int line, string reason)
    {
        var ex = Assert.Throws<RulesetParseException>(() => IptablesSaveParser.Parse(text, IpFamily.IPv4));
        Assert.Equal(line, ex.LineNumber);
        Assert.Contains(reason, ex.Message);
        Assert.Equal("RulesetParseError", ex.ErrorId);
        Assert.Equal(FailureKind.InvalidData, ex.Kind);
    }

    [Fact]
    public void Missing_commit_is_reported_on_the_last_line_of_the_text()
    {
        // iptables-save output always ends with "\n"; the text has 3 lines (wc -l), the parser says line 4.
        var ex = Assert.Throws<RulesetParseException>(() => IptablesSaveParser.Parse("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n", IpFamily.IPv4));
        Assert.Equal(3, ex.LineNumber);
    }

    [Fact]
    public void Table_started_before_the_previous_commit_is_rejected()
    {
        // iptables-restore rejects this; a dump whose nat COMMIT is missing must not read as two good tables.
        const string text = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
        var ex = Assert.Throws<RulesetParseException>(() => IptablesSaveParser.Parse(text, IpFamily.IPv4));
        Assert.Equal(4, ex.LineNumber);
        Assert.Contains("nat", ex.Message);
    }
}
