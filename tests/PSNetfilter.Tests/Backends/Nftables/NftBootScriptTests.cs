using PSNetfilter.Core;
using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Backends.Nftables;
using PSNetfilter.Core.Persistence;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// The boot set of nftables forwards (apply.sh and forwards.nft, as Install-PortForwardService writes them) run with
/// /bin/sh in throw-away namespaces (psnfT-*): start on an empty namespace, start over identical, changed and
/// foreign state, stop, and the rest of the ruleset untouched. The script reads its nft file from the test's
/// folder (the one assignment of PSNF_NFT_FILE is pointed there); everything else is as installed.
/// </summary>
public sealed class NftBootScriptTests : IDisposable
{
    private const string Foreign = """
        table inet other {
        	chain f {
        		type filter hook forward priority 0; policy accept;
        		tcp dport 9 counter drop
        	}
        }

        """;

    private readonly BootSetFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private static PortForwardDefinition Other => PortForwardDefinition.Create("other", Protocol.Tcp, NftDefs.Ip("203.0.113.1"), 5000, NftDefs.Ip("198.51.100.20"), 5000, SnatMode.Masquerade, null, null,
        new ForwardExtras(SourceAddresses: new[] { NftDefs.Net("192.0.2.0/24") }));

    private string Install(BootSet set) => _folder.Write(set);

    private static BootSet NftSet(params PortForwardDefinition[] forwards) => BootSetFolder.Nft(forwards);

    private static string Run(NftTestNamespace ns, string script, string action) => ns.Exec("sh", script, action);

    [Fact]
    public void The_files_only_add_and_name_only_our_table()
    {
        var files = BootScript.Files(NftSet(NftDefs.All().ToArray()));
        Assert.Equal(2, files.Count);
        var (nftPath, nft) = files[0];
        Assert.EndsWith("/forwards.nft", nftPath, StringComparison.Ordinal);
        foreach (var line in nft.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            Assert.StartsWith("add ", line, StringComparison.Ordinal);
            Assert.Contains(" inet psnetfilter", line, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(files[1].Text.Split('\n'), l => !l.TrimStart().StartsWith('#') && System.Text.RegularExpressions.Regex.IsMatch(l, @"flush (ruleset|table|chain|set|map)\b"));
        Assert.Contains("# psnf-backend: web nftables", files[1].Text, StringComparison.Ordinal);
        Assert.Equal(BackendCatalog.Nftables, BootSetReader.Parse(files[1].Text)!.Backends["web"]);

        // A set of iptables forwards only has no nft file.
        Assert.Single(BootScript.Files(new BootSet("psnetfilter.service", null, new[] { NftDefs.Web })));
    }

    [Fact]
    public void The_script_keeps_each_saved_definition_after_its_last_command()
    {
        var all = NftDefs.All();
        var text = BootScript.Generate(NftSet(all.ToArray()));
        var info = BootSetReader.Parse(text)!;
        Assert.Equal(all.OrderBy(d => d.Name, StringComparer.Ordinal), info.Definitions.Values.OrderBy(d => d.Name, StringComparer.Ordinal));
        var exit = text.IndexOf("\nexit $?\n", StringComparison.Ordinal);
        Assert.True(exit > 0 && exit < text.IndexOf("# psnf-definition:", StringComparison.Ordinal));

        // The header alone (what Get-PortForward reads for Persisted) carries names, not definitions.
        var head = string.Concat(text.Split('\n').TakeWhile(l => l.StartsWith('#')).Select(l => l + "\n"));
        Assert.Empty(BootSetReader.Parse(head)!.Definitions);
        Assert.Equal(all.Count, BootSetReader.Parse(head)!.ForwardNames.Count);
    }

    [RootFact]
    public void Start_on_an_empty_namespace_loads_every_saved_forward_and_touches_no_other_table()
    {
        using var ns = new NftTestNamespace();
        ns.Nft(Foreign);
        var foreign = ns.ForeignRuleset();
        var all = NftDefs.All();
        var script = Install(NftSet(all.ToArray()));

        var output = Run(ns, script, "start");

        Assert.Contains("loaded whole", output, StringComparison.Ordinal);
        var state = NftTableReader.Read(ns.ListTableJson());
        Assert.Equal(all.OrderBy(d => d.Name, StringComparer.Ordinal), state.Forwards.Select(f => f.Definition));
        Assert.All(state.Forwards, f => Assert.Empty(f.Missing));
        Assert.Equal(foreign, ns.ForeignRuleset());
    }

    [RootFact]
    public void Start_over_identical_live_forwards_changes_nothing_counters_included()
    {
        using var ns = new NftTestNamespace();
        var all = NftDefs.All();
        var script = Install(NftSet(all.ToArray()));
        Run(ns, script, "start");

        // Give the web forward's accept element a counter value, as traffic would.
        var web = NftForwardRenderer.Render(NftDefs.Web).Single(p => p.Role == "fwd");
        ns.Nft($"delete element inet psnetfilter {web.Container} {{ {web.Key} }}\nadd element inet psnetfilter {web.Container} {{ {web.Key} counter packets 7 bytes 700 comment \"psnf:v1:web:fwd\" }}\n");
        var before = ns.Exec("nft", "-a", "list", "table", "inet", "psnetfilter");

        var output = Run(ns, script, "reload");

        Assert.Equal(before, ns.Exec("nft", "-a", "list", "table", "inet", "psnetfilter")); // handles too: no rule was re-added
        Assert.Contains("0 live parts of them replaced", output, StringComparison.Ordinal);
        var f = NftTableReader.Read(ns.ListTableJson()).Forwards.Single(x => x.Name == "web");
        Assert.Equal((7L, 700L), (f.Packets, f.Bytes));
    }

    [RootFact]
    public void Start_replaces_a_changed_or_incomplete_saved_forward_and_leaves_the_others()
    {
        using var ns = new NftTestNamespace();
        var script = Install(NftSet(NftDefs.Web, NftDefs.All().Single(d => d.Name == "allow")));
        Run(ns, script, "start");

        // Live now: 'WEB' (the saved name in other case) on another port, 'allow' without its DNAT rule, and an
        // unsaved forward made by the module.
        var state = NftTableReader.Read(ns.ListTableJson());
        var changed = PortForwardDefinition.Create("WEB", Protocol.Tcp, NftDefs.Ip("203.0.113.1"), 8081, NftDefs.Ip("198.51.100.10"), 80, SnatMode.Snat, NftDefs.Ip("198.51.100.1"), null);
        var allow = state.Forwards.Single(x => x.Name == "allow");
        ns.Nft(NftChangeScript.Render(state, new[] { changed, Other }, state.Forwards.Where(x => x.Name == "web")));
        ns.Nft(allow.Parts.First(p => p.Role == "dnat").DeleteLine + "\n");
        var otherBefore = NftTableReader.Read(ns.ListTableJson()).Forwards.Single(x => x.Name == "other");

        Run(ns, script, "start");

        var after = NftTableReader.Read(ns.ListTableJson()).Forwards.ToDictionary(x => x.Name);
        Assert.Equal(new[] { "allow", "other", "web" }, after.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(NftDefs.Web, after["web"].Definition);
        Assert.Empty(after["allow"].Missing);
        Assert.Equal(otherBefore.Parts.Select(p => p.DeleteLine), after["other"].Parts.Select(p => p.DeleteLine)); // same handles
    }

    [RootFact]
    public void Stop_removes_exactly_the_saved_forwards()
    {
        using var ns = new NftTestNamespace();
        ns.Nft(Foreign);
        var foreign = ns.ForeignRuleset();
        var script = Install(NftSet(NftDefs.All().ToArray()));
        Run(ns, script, "start");
        var state = NftTableReader.Read(ns.ListTableJson());
        ns.Nft(NftChangeScript.Render(state, new[] { Other }, Array.Empty<NftTableForward>()));

        Run(ns, script, "stop");

        var after = NftTableReader.Read(ns.ListTableJson());
        Assert.Equal(new[] { "other" }, after.Forwards.Select(f => f.Name));
        Assert.Empty(after.Forwards[0].Missing);
        Assert.Equal(foreign, ns.ForeignRuleset());

        // stop again, and stop where the table is gone: nothing to do, no error.
        Run(ns, script, "stop");
        ns.Nft("delete table inet psnetfilter\n");
        Assert.Contains("does not exist", Run(ns, script, "stop"), StringComparison.Ordinal);
    }

    [RootFact]
    public void A_refused_start_applies_nothing()
    {
        using var ns = new NftTestNamespace();
        var script = Install(NftSet(NftDefs.Web));

        // An unsaved forward holds the saved one's external port: the dnat map refuses the overlapping element.
        var clash = PortForwardDefinition.Create("clash", Protocol.Tcp, NftDefs.Ip("203.0.113.1"), 8080, NftDefs.Ip("198.51.100.30"), 80, SnatMode.Masquerade, null, null);
        ns.Nft(NftChangeScript.Render(NftTableState.Empty, new[] { clash }, Array.Empty<NftTableForward>()));
        var before = ns.ListTable();

        var r = Sh.Run("ip", "netns", "exec", ns.Name, "sh", script, "start");

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("nothing of it was applied", r.StandardError, StringComparison.Ordinal);
        Assert.Equal(before, ns.ListTable());
    }

    [RootFact]
    public void A_set_with_both_backends_restores_each_forward_into_its_own()
    {
        using var ns = new NftTestNamespace();
        var dns = PortForwardDefinition.Create("dns", Protocol.Udp, NftDefs.Ip("203.0.113.1"), 53, NftDefs.Ip("198.51.100.53"), 53, SnatMode.Masquerade, null, null);
        var set = new BootSet("psnetfilter-test.service", null, new[] { (NftDefs.Web, BackendCatalog.Nftables), (dns, BackendCatalog.Iptables) });
        var script = Install(set);

        Run(ns, script, "start");

        Assert.Equal(new[] { "web" }, NftTableReader.Read(ns.ListTableJson()).Forwards.Select(f => f.Name));
        var save = ns.Exec("iptables-save", "-t", "nat");
        Assert.Contains("psnf:v1:dns:", save, StringComparison.Ordinal);
        Assert.DoesNotContain("psnf:v1:web:", save, StringComparison.Ordinal);

        Run(ns, script, "stop");
        Assert.Empty(NftTableReader.Read(ns.ListTableJson()).Forwards);
        Assert.DoesNotContain("psnf:v1:", ns.Exec("iptables-save", "-t", "nat"), StringComparison.Ordinal);
    }

    [RootFact]
    public void Where_iptables_FORWARD_drops_start_adds_the_forward_accepts_there_and_stop_removes_them()
    {
        using var ns = new NftTestNamespace();
        var script = Install(NftSet(NftDefs.Web));

        string Filter() => string.Join('\n', ns.Exec("iptables-save", "-c", "-t", "filter").Split('\n').Where(l => !l.StartsWith('#')));

        // No drop: nothing is written to iptables (a pure nftables host stays pure).
        Run(ns, script, "start");
        Assert.DoesNotContain("psnf:v1:", ns.Exec("iptables-save", "-t", "filter"), StringComparison.Ordinal);

        // Docker's or ufw's policy: the reload (what docker.service's start triggers) adds the accept.
        ns.Exec("iptables", "-P", "FORWARD", "DROP");
        var output = Run(ns, script, "reload");
        Assert.Contains("with the FORWARD accepts of web", output, StringComparison.Ordinal);
        var filter = Filter();
        Assert.Contains("psnf:v1:web:nftfwd", filter, StringComparison.Ordinal);
        Assert.Contains("-A FORWARD -j PSNF-FORWARD", filter, StringComparison.Ordinal);

        // Again: left alone.
        Assert.Contains("left alone: web", Run(ns, script, "reload"), StringComparison.Ordinal);
        Assert.Equal(filter, Filter());

        Run(ns, script, "stop");
        Assert.DoesNotContain("PSNF-", ns.Exec("iptables-save", "-t", "filter"), StringComparison.Ordinal);
        Assert.Empty(NftTableReader.Read(ns.ListTableJson()).Forwards);
    }
}
