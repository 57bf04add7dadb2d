using System.Text.RegularExpressions;
using PSNetfilter.Core.Backends.Nftables;
using Xunit;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>The nftables table's text, without a kernel: golden scripts, the map/rule split, and what may not leak.</summary>
public class NftTableRenderingTests
{
    private static PortForwardDefinition Ssh6 => PortForwardDefinition.Create("ssh6", Protocol.Tcp, null, 2222, NftDefs.Ip("2001:db8:2::20"), 22, SnatMode.Masquerade, null, null,
        new ForwardExtras(SourceAddresses: new[] { NftDefs.Net("2001:db8:9::/48") }, InInterface: "eth+"));

    [Fact]
    public void A_map_forward_is_elements_and_an_allow_listed_one_a_rule()
    {
        var web = PortForwardDefinition.Create("web", Protocol.Tcp, NftDefs.Ip("203.0.113.1"), 8080, NftDefs.Ip("198.51.100.10"), 80, SnatMode.Snat, NftDefs.Ip("198.51.100.1"), "it's \"web\"");
        Assert.Equal(
            """
            add element inet psnetfilter dnat4x { 203.0.113.1 . tcp . 8080 comment "psnf:v1:web:dnat:snat:D" : 198.51.100.10 . 80 }
            add element inet psnetfilter snat4x { 198.51.100.10 . tcp . 80 . 203.0.113.1 . 8080 comment "psnf:v1:web:snat" : 198.51.100.1 }
            add element inet psnetfilter accept4x { 203.0.113.1 . tcp . 8080 . 198.51.100.10 . 80 comment "psnf:v1:web:fwd" }
            add element inet psnetfilter notes { "0fd9bc91.0" comment "psnf:v1:web:d0/1:aXQncyAid2ViIg" }
            """,
            string.Join('\n', NftForwardRenderer.Render(web).Select(p => p.Line)));
        Assert.Equal(
            """
            add rule inet psnetfilter prerouting meta nfproto ipv6 iifname "eth*" ip6 saddr 2001:db8:9::/48 fib daddr type local tcp dport 2222 dnat ip6 to [2001:db8:2::20]:22 comment "psnf:v1:ssh6:dnat:masq:IS1"
            add element inet psnetfilter masq6 { 2001:db8:2::20 . tcp . 22 . ::/0 . 2222 comment "psnf:v1:ssh6:masq" }
            add element inet psnetfilter accept6 { ::/0 . tcp . 2222 . 2001:db8:2::20 . 22 comment "psnf:v1:ssh6:fwd" }
            """,
            string.Join('\n', NftForwardRenderer.Render(Ssh6).Select(p => p.Line)));
        Assert.True(NftForwardRenderer.IsMapForward(web));
        Assert.False(NftForwardRenderer.IsMapForward(Ssh6));
    }

    [Fact]
    public void Ranges_are_one_interval_element_onto_one_port_and_one_element_per_port_onto_a_range()
    {
        var all = NftDefs.All().ToDictionary(d => d.Name);
        var one = NftForwardRenderer.Render(all["range-one"]).Where(p => p.Role == "dnat").ToList();
        Assert.Equal("203.0.113.1 . tcp . 9000-9010", Assert.Single(one).Key);
        Assert.Equal("dnat4", one[0].Container); // a port range: the interval twin
        Assert.Equal("accept4", NftForwardRenderer.Render(all["range-one"]).Single(p => p.Role == "fwd").Container);
        var shift = NftForwardRenderer.Render(all["range-shift"]).Where(p => p.Role == "dnat").ToList();
        Assert.Equal(4, shift.Count);
        Assert.All(shift, p => Assert.Equal("dnat4x", p.Container)); // one element per port: the exact twin
        Assert.EndsWith("203.0.113.1 . tcp . 7003 comment \"psnf:v1:range-shift:dnat:none\" : 198.51.100.12 . 17003 }", shift[3].Line);
        var shift6 = Assert.Single(NftForwardRenderer.Render(all["range-shift6"]), p => p.Role == "dnat");
        Assert.True(shift6.IsRule);
        Assert.Contains("udp dport 7000-7002 dnat ip6 to [2001:db8:2::12] : udp dport map { 7000 : 17000, 7001 : 17001, 7002 : 17002 }", shift6.Line);
        var local = NftForwardRenderer.Render(all["local"]);
        Assert.Equal(new[] { "dnat", "local", "snat", "fwd" }, local.Select(p => p.Role));
        Assert.Equal(3, NftForwardRenderer.Render(all["allow"]).Count(p => p.Role == "dnat" || p.Role == "snat"));
    }

    [Fact]
    public void Every_line_names_only_our_table_and_no_comment_leaves_its_alphabet()
    {
        var script = NftChangeScript.BootFile(NftDefs.All()) + NftChangeScript.Render(NftTableState.Empty, NftDefs.All(), Array.Empty<NftTableForward>());
        var lines = script.TrimEnd('\n').Split('\n');
        Assert.All(lines, l => Assert.Matches(@"^(add|flush|delete) (table|chain|map|set|rule|element) inet psnetfilter( |$)", l));
        Assert.DoesNotContain("flush ruleset", script);
        Assert.DoesNotContain("flush table", script);
        var comments = Regex.Matches(script, "comment \"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(comments);
        Assert.All(comments, c => Assert.Matches(@"^psnf:v1:[A-Za-z0-9._@/:-]{1,120}$", c));
        Assert.All(comments, c => Assert.True(c.Length <= NftTableLayout.MaxCommentLength, c));

        // The only double quotes are the ones around comments, interface names and note keys.
        var quoted = Regex.Replace(script, "(comment|iifname) \"[^\"]*\"|\\{ \"[0-9a-f]{8}\\.[0-9]\" ", string.Empty);
        Assert.DoesNotContain("\"", quoted);
    }

    [Fact]
    public void A_long_description_of_a_long_name_is_cut_into_notes_that_read_back()
    {
        var name = new string('n', 64);
        var description = new string('\u00e9', 60);
        var notes = NftNotes.Render(name, description);
        Assert.True(notes.Count > 1);
        Assert.All(notes, n => Assert.True(n.Comment.Length <= NftTableLayout.MaxCommentLength));
        var chunks = notes.Select(n => NftNotes.ParseRole(n.Comment[(ForwardTag.TagPrefix.Length + name.Length + 1)..])!.Value).ToList();
        Assert.Equal(Enumerable.Range(0, notes.Count), chunks.Select(c => c.Index));
        Assert.All(chunks, c => Assert.Equal(notes.Count, c.Count));
        Assert.Equal(description, ForwardTag.DecodeDescription(string.Concat(chunks.Select(c => c.Chunk))));
        Assert.Null(NftNotes.ParseRole("dnat:snat"));
    }

    [Fact]
    public void A_change_deletes_rules_by_handle_and_elements_by_key_and_adds_only_missing_dispatch_rules()
    {
        var gone = new NftTableForward("ssh6", Ssh6, 0, 0, Array.Empty<string>(), new[]
        {
            new NftPresentPart(true, "prerouting", "dnat", string.Empty, 42),
            new NftPresentPart(false, "masq6", "masq", "2001:db8:2::20 . tcp . 22 . ::/0 . 2222", 0),
        });
        var tags = NftTableLayout.DispatchRules().Select(r => r.Tag).Where(t => t != "psnf:v1:@accept6").ToHashSet();
        var script = NftChangeScript.Render(new NftTableState(true, new[] { gone }, tags), Array.Empty<PortForwardDefinition>(), new[] { gone });
        var lines = script.TrimEnd('\n').Split('\n');
        Assert.Equal(NftTableLayout.Skeleton(), lines.Take(NftTableLayout.Skeleton().Count()));
        Assert.Equal(
            new[]
            {
                NftTableLayout.DispatchLine(NftTableLayout.DispatchRules().Single(r => r.Tag == "psnf:v1:@accept6")),
                "delete rule inet psnetfilter prerouting handle 42",
                "delete element inet psnetfilter masq6 { 2001:db8:2::20 . tcp . 22 . ::/0 . 2222 }",
            },
            lines.Skip(NftTableLayout.Skeleton().Count()));
    }

    [Fact]
    public void The_reader_names_a_missing_description_chunk_and_reads_only_our_table()
    {
        var json = """
            {"nftables": [{"metainfo": {"version": "1.1.3", "json_schema_version": 1}},
             {"table": {"family": "inet", "name": "psnetfilter", "handle": 1}},
             {"table": {"family": "inet", "name": "other", "handle": 2}},
             {"map": {"family": "inet", "name": "dnat4", "table": "psnetfilter", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 1, "map": "ipv4_addr . inet_service", "flags": ["interval"],
               "elem": [[{"elem": {"val": {"concat": ["203.0.113.1", "tcp", 8080]}, "comment": "psnf:v1:web:dnat:none:D"}}, {"concat": ["198.51.100.10", 80]}]]}},
             {"set": {"family": "inet", "name": "accept4", "table": "psnetfilter", "type": ["ipv4_addr", "inet_proto", "inet_service", "ipv4_addr", "inet_service"], "handle": 2, "flags": ["interval"],
               "elem": [{"elem": {"val": {"concat": ["203.0.113.1", "tcp", 8080, "198.51.100.10", 80]}, "comment": "psnf:v1:web:fwd", "counter": {"packets": 12, "bytes": 3400}}}]}},
             {"set": {"family": "inet", "name": "notes", "table": "psnetfilter", "type": "ifname", "handle": 3,
               "elem": [{"elem": {"val": "0fd9bc91.1", "comment": "psnf:v1:web:d1/2:aGk"}}]}},
             {"set": {"family": "inet", "name": "accept4", "table": "other", "type": "ipv4_addr", "handle": 4,
               "elem": [{"elem": {"val": "192.0.2.1", "comment": "psnf:v1:intruder:fwd"}}]}}
            ]}
            """;
        var state = NftTableReader.Read(json);
        var web = Assert.Single(state.Forwards);
        Assert.Equal(new[] { "description" }, web.Missing);
        Assert.Equal((12L, 3400L), (web.Packets, web.Bytes));
        Assert.Equal(PortForwardDefinition.Create("web", Protocol.Tcp, NftDefs.Ip("203.0.113.1"), 8080, NftDefs.Ip("198.51.100.10"), 80, SnatMode.None, null, null), web.Definition);
        Assert.Equal("delete element inet psnetfilter notes { \"0fd9bc91.1\" }", web.Parts.Single(p => p.Container == "notes").DeleteLine);
        Assert.False(NftTableReader.Read("""{"nftables": [{"table": {"family": "ip", "name": "psnetfilter", "handle": 1}}]}""").Exists);
    }

    [Fact]
    public void Batched_elements_are_one_line_per_set_and_the_rules_keep_their_owners()
    {
        var all = NftDefs.All();
        var (plain, plainOwners) = NftChangeScript.RenderOwned(NftTableState.Empty, all, Array.Empty<NftTableForward>());
        var (batched, owners) = NftChangeScript.RenderOwned(NftTableState.Empty, all, Array.Empty<NftTableForward>(), batchElements: true);
        var plainLines = plain.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var lines = batched.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(lines.Length, owners.Count);

        var elementLines = lines.Where(l => l.StartsWith("add element ", StringComparison.Ordinal)).ToList();
        var sets = elementLines.Select(l => l.Split(' ')[4]).ToList();
        Assert.Equal(sets.Distinct().Count(), sets.Count); // one line per set
        Assert.All(Enumerable.Range(0, lines.Length).Where(i => lines[i].StartsWith("add element ", StringComparison.Ordinal)), i => Assert.Null(owners[i]));

        // The same elements: every element of the plain script is in its set's batch.
        foreach (var line in plainLines.Where(l => l.StartsWith("add element ", StringComparison.Ordinal)))
        {
            var set = line.Split(' ')[4];
            var element = line[(line.IndexOf("{ ", StringComparison.Ordinal) + 2)..^2];
            Assert.Contains(element, elementLines.Single(l => l.Split(' ')[4] == set), StringComparison.Ordinal);
        }

        // The rules: the same lines with the same owners.
        var plainRules = plainLines.Select((l, i) => (l, plainOwners[i])).Where(x => x.l.StartsWith("add rule ", StringComparison.Ordinal)).ToList();
        var rules = lines.Select((l, i) => (l, owners[i])).Where(x => x.l.StartsWith("add rule ", StringComparison.Ordinal)).ToList();
        Assert.Equal(plainRules, rules);
        Assert.Equal(plainLines.Count(l => l.StartsWith("add element ", StringComparison.Ordinal)), elementLines.Sum(l => l.Split(" comment ").Length - 1));
    }
}
