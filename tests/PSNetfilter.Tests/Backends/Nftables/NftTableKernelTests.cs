using PSNetfilter.Core.Backends.Nftables;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// The rendered table against the real kernel and nft, in throw-away namespaces (psnfT-*): load, read back with
/// <c>nft -j list table inet psnetfilter</c>, change, and the rest of the ruleset untouched.
/// </summary>
public class NftTableKernelTests
{
    private const string Foreign = """
        table inet other {
        	chain f {
        		type filter hook forward priority 0; policy accept;
        		tcp dport 9 counter drop
        	}
        }
        table ip nat {
        	chain PREROUTING {
        		type nat hook prerouting priority dstnat; policy accept;
        		tcp dport 1 counter
        	}
        }

        """;

    [RootFact]
    public void Every_variant_round_trips_through_the_kernel()
    {
        using var ns = new NftTestNamespace();
        var all = NftDefs.All();
        ns.Nft(NftChangeScript.Render(NftTableState.Empty, all, Array.Empty<NftTableForward>()));

        var state = NftTableReader.Read(ns.ListTableJson());
        Assert.True(state.Exists);
        Assert.Equal(all.Select(d => d.Name).Order(StringComparer.Ordinal), state.Forwards.Select(f => f.Name));
        foreach (var d in all)
        {
            var f = state.Forwards.Single(x => x.Name == d.Name);
            Assert.True(f.Missing.Count == 0, d.Name + " misses " + string.Join(",", f.Missing));
            Assert.Equal(d, f.Definition);
            Assert.Equal(d.Description, f.Definition!.Description);
            Assert.Equal(0, f.Packets);
        }

        Assert.Equal(NftTableLayout.DispatchRules().Select(r => r.Tag).Order(), state.DispatchTags.Order());
    }

    [RootFact]
    public void Batched_elements_make_the_same_table_as_one_line_per_element()
    {
        using var batched = new NftTestNamespace();
        using var lines = new NftTestNamespace();
        var all = NftDefs.All();
        var (script, owners) = NftChangeScript.RenderOwned(NftTableState.Empty, all, Array.Empty<NftTableForward>(), batchElements: true);
        Assert.Equal(script.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, owners.Count);
        batched.Nft(script);
        lines.Nft(NftChangeScript.Render(NftTableState.Empty, all, Array.Empty<NftTableForward>()));

        // The same table; the kernel may list the elements of a set in another order.
        static List<string> Items(string listing) => listing.Split(new[] { '\n', ',' }, StringSplitOptions.RemoveEmptyEntries)
            .Select(x => x.Trim().TrimStart('{').TrimEnd('}').Trim()).Where(x => x.Length > 0).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(Items(lines.ListTable()), Items(batched.ListTable()));
        var state = NftTableReader.Read(batched.ListTableJson());
        Assert.Equal(all.OrderBy(d => d.Name, StringComparer.Ordinal), state.Forwards.Select(f => f.Definition));
        Assert.All(state.Forwards, f => Assert.Empty(f.Missing));
    }

    [RootFact]
    public void A_change_touches_only_our_table_and_removes_every_part()
    {
        using var ns = new NftTestNamespace();
        ns.Nft(Foreign);
        var foreign = ns.ForeignRuleset();
        Assert.Contains("table inet other", foreign);
        var all = NftDefs.All();

        // An empty namespace: the first change creates the table; a second run of the same adds would clash, so
        // the second change replaces half the forwards (delete, then add) in one transaction.
        ns.Nft(NftChangeScript.Render(NftTableState.Empty, all, Array.Empty<NftTableForward>()));
        Assert.Equal(foreign, ns.ForeignRuleset());
        var state = NftTableReader.Read(ns.ListTableJson());
        var half = state.Forwards.Where((_, i) => i % 2 == 0).ToList();
        ns.Nft(NftChangeScript.Render(state, half.Select(f => f.Definition!), half));
        Assert.Equal(foreign, ns.ForeignRuleset());
        state = NftTableReader.Read(ns.ListTableJson());
        Assert.Equal(all.OrderBy(d => d.Name, StringComparer.Ordinal), state.Forwards.Select(f => f.Definition));

        // Remove everything: the forwards go, the table (ours, empty of forwards) and the foreign tables stay.
        ns.Nft(NftChangeScript.Render(state, Array.Empty<PortForwardDefinition>(), state.Forwards));
        Assert.Equal(foreign, ns.ForeignRuleset());
        var empty = NftTableReader.Read(ns.ListTableJson());
        Assert.True(empty.Exists);
        Assert.Empty(empty.Forwards);
        Assert.DoesNotContain("psnf:v1:", ns.ListTable().Replace("psnf:v1:@", string.Empty, StringComparison.Ordinal));
    }

    [RootFact]
    public void An_incomplete_forward_names_the_missing_part()
    {
        using var ns = new NftTestNamespace();
        ns.Nft(NftChangeScript.BootFile(NftDefs.All()));
        var state = NftTableReader.Read(ns.ListTableJson());
        var web = state.Forwards.Single(f => f.Name == "web");
        var allow = state.Forwards.Single(f => f.Name == "allow");
        var local = state.Forwards.Single(f => f.Name == "local");
        ns.Nft(string.Join('\n',
            web.Parts.Single(p => p.Role == "fwd").DeleteLine,
            allow.Parts.First(p => p.Role == "dnat").DeleteLine,
            local.Parts.Single(p => p.Role == "local").DeleteLine,
            local.Parts.Single(p => p.Role == "snat").DeleteLine) + "\n");

        var after = NftTableReader.Read(ns.ListTableJson()).Forwards.ToDictionary(f => f.Name);
        Assert.Equal(new[] { "fwd" }, after["web"].Missing);
        Assert.Equal(NftDefs.Web, after["web"].Definition);
        Assert.Contains("dnat", after["allow"].Missing);
        Assert.Equal(new[] { "local", "snat" }, after["local"].Missing.Order());
        Assert.All(after.Values.Where(f => f.Name is not ("web" or "allow" or "local")), f => Assert.Empty(f.Missing));
    }

    /// <summary>
    /// A table as the layout before the exact/interval split wrote it: every map and set declared <c>flags interval</c>
    /// under the names the interval twins keep, web's elements in them, and only their four dispatch rules.
    /// </summary>
    private const string OldLayout = """
        add table inet psnetfilter
        add chain inet psnetfilter prerouting { type nat hook prerouting priority dstnat; policy accept; }
        add chain inet psnetfilter output { type nat hook output priority -100; policy accept; }
        add chain inet psnetfilter postrouting { type nat hook postrouting priority srcnat; policy accept; }
        add chain inet psnetfilter forward { type filter hook forward priority filter; policy accept; }
        add map inet psnetfilter dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
        add map inet psnetfilter snat4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service : ipv4_addr; flags interval; }
        add set inet psnetfilter masq4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service; flags interval; }
        add set inet psnetfilter accept4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service; flags interval; counter; }
        add set inet psnetfilter notes { type ifname; }
        add rule inet psnetfilter prerouting meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport map @dnat4 comment "psnf:v1:@dnat4"
        add rule inet psnetfilter postrouting meta l4proto { tcp, udp } ct status dnat snat ip to ip daddr . meta l4proto . th dport . ct original ip daddr . ct original proto-dst map @snat4 comment "psnf:v1:@snat4"
        add rule inet psnetfilter postrouting meta l4proto { tcp, udp } ct status dnat ip daddr . meta l4proto . th dport . ct original ip daddr . ct original proto-dst @masq4 masquerade comment "psnf:v1:@masq4"
        add rule inet psnetfilter forward meta l4proto { tcp, udp } ct status dnat ct original ip daddr . ct original protocol . ct original proto-dst . ct reply ip saddr . ct reply proto-src @accept4 accept comment "psnf:v1:@accept4"
        add element inet psnetfilter dnat4 { 203.0.113.1 . tcp . 8080 comment "psnf:v1:web:dnat:snat" : 198.51.100.10 . 80 }
        add element inet psnetfilter snat4 { 198.51.100.10 . tcp . 80 . 203.0.113.1 . 8080 comment "psnf:v1:web:snat" : 198.51.100.1 }
        add element inet psnetfilter accept4 { 203.0.113.1 . tcp . 8080 . 198.51.100.10 . 80 counter packets 5 bytes 500 comment "psnf:v1:web:fwd" }

        """;

    [RootFact]
    public void A_table_of_the_layout_before_the_exact_twins_is_read_changed_and_gets_them()
    {
        using var ns = new NftTestNamespace();
        ns.Nft(OldLayout);

        // Read: web's elements sit in the interval containers, and are still web, counter included.
        var state = NftTableReader.Read(ns.ListTableJson());
        var web = Assert.Single(state.Forwards);
        Assert.Empty(web.Missing);
        Assert.Equal(NftDefs.Web, web.Definition);
        Assert.Equal((5L, 500L), (web.Packets, web.Bytes));
        Assert.Equal(new[] { "accept4", "dnat4", "snat4" }, web.Parts.Select(p => p.Container).Order(StringComparer.Ordinal));

        // A change over it: the skeleton's add of the twins is accepted, the missing dispatch rules come, and web's
        // old elements are removed while another forward goes into the exact twins.
        var other = PortForwardDefinition.Create("other", Protocol.Udp, NftDefs.Ip("203.0.113.1"), 5353, NftDefs.Ip("198.51.100.10"), 53, SnatMode.Masquerade, null, null);
        ns.Nft(NftChangeScript.Render(state, new[] { other }, new[] { web }));
        var after = NftTableReader.Read(ns.ListTableJson());
        Assert.Equal(NftTableLayout.DispatchRules().Select(r => r.Tag).Order(), after.DispatchTags.Order());
        var read = Assert.Single(after.Forwards);
        Assert.Equal(other, read.Definition);
        Assert.Empty(read.Missing);
        Assert.Equal(new[] { "accept4x", "dnat4x", "masq4x" }, read.Parts.Select(p => p.Container).Order(StringComparer.Ordinal));
        Assert.DoesNotContain("psnf:v1:web", ns.ListTable());
    }
}
