using System.Management.Automation;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

/// <summary>
/// Against the real kernel, in throw-away network namespaces (psnfx-*) only: the host's own rules are never
/// read or changed, no interface leaves its namespace and no packet is sent.
/// </summary>
public class NamespaceTests
{
    private const string NewId = "PSNetfilter.Commands.NewPortForwardCommand";
    private const string RemoveId = "PSNetfilter.Commands.RemovePortForwardCommand";

    private static PSObject Only(PsRunner.Result r)
    {
        Assert.True(r.Errors.Count == 0, "unexpected errors: " + string.Join(" | ", r.Errors.Select(e => e.FullyQualifiedErrorId + ": " + e.Exception.Message)));
        return Assert.Single(r.Output);
    }

    [RootFact]
    public void Cmdlets_create_read_whatif_and_remove_a_forward_in_a_namespace()
    {
        using var ns = new TestNamespace();
        var vars = new Dictionary<string, object?> { ["ns"] = ns.Name };
        ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=0"); // a new namespace copies the host's setting
        var empty = ns.Save();

        var created = Only(PsRunner.Run(
            "New-PortForward -NetworkNamespace $ns -Name web -ExternalAddress 203.0.113.1 -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -Description 'it''s \"web\"'",
            vars));
        Assert.Equal("Created", created.Properties["Change"].Value);
        var forward = Assert.IsType<PortForward>(created.BaseObject);
        Assert.Equal(ns.Name, forward.NetworkNamespace);
        var expected = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), null, SnatMode.Snat, Defs.Ip("198.51.100.1"), "it's \"web\"");
        Assert.Equal(expected, forward.Definition);
        Assert.Equal("1", ns.Exec("sysctl", "-n", "net.ipv4.ip_forward").Trim()); // switched on by New-PortForward

        var got = Only(PsRunner.Run("Get-PortForward -NetworkNamespace $ns", vars));
        var read = Assert.IsType<PortForward>(got.BaseObject);
        Assert.Equal(expected, read.Definition);
        Assert.Equal("Complete", read.Status);
        Assert.Equal(expected.Description, read.Description);

        var withForward = ns.Save();
        var text = TestNamespace.Flatten(withForward);
        Assert.Contains(":PSNF-PREROUTING - [0:0]", text);
        Assert.Contains(":PSNF-POSTROUTING - [0:0]", text);
        Assert.Contains(":PSNF-FORWARD - [0:0]", text);
        Assert.Contains("-A PREROUTING -j PSNF-PREROUTING", text);
        Assert.Contains("-A POSTROUTING -j PSNF-POSTROUTING", text);
        Assert.Contains("-A FORWARD -j PSNF-FORWARD", text);
        Assert.Contains("--comment \"psnf:v1:web:fwd:D\"", text);
        Assert.DoesNotContain("PSNF", TestNamespace.Flatten(ns.Save("ip6tables-save")));

        // -WhatIf changes nothing, for New and Remove.
        var whatIfNew = PsRunner.Run("New-PortForward -NetworkNamespace $ns -Name other -ExternalPort 9000 -InternalAddress 198.51.100.11 -Masquerade -WhatIf", vars);
        Assert.Empty(whatIfNew.Errors);
        Assert.Empty(whatIfNew.Output);
        var whatIfRemove = PsRunner.Run("Remove-PortForward -NetworkNamespace $ns -Name web -WhatIf", vars);
        Assert.Empty(whatIfRemove.Errors);
        Assert.Equal(withForward, ns.Save());

        // The same definition again is Unchanged and changes nothing; another one without -Force is refused.
        var again = Only(PsRunner.Run(
            "New-PortForward -NetworkNamespace $ns -Name web -ExternalAddress 203.0.113.1 -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -Description 'it''s \"web\"'",
            vars));
        Assert.Equal("Unchanged", again.Properties["Change"].Value);
        var exists = PsRunner.Run("New-PortForward -NetworkNamespace $ns -Name web -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade", vars);
        Assert.Equal($"PortForwardExists,{NewId}", Assert.Single(exists.Errors).FullyQualifiedErrorId);
        var clash = PsRunner.Run("New-PortForward -NetworkNamespace $ns -Name web2 -ExternalPort 8080 -InternalAddress 198.51.100.12 -Masquerade", vars);
        Assert.Equal($"ExternalEndpointInUse,{NewId}", Assert.Single(clash.Errors).FullyQualifiedErrorId);
        Assert.Equal(withForward, ns.Save());

        var removed = Only(PsRunner.Run("Remove-PortForward -NetworkNamespace $ns -Name web -PassThru", vars));
        Assert.Equal("Removed", removed.Properties["Change"].Value);
        var after = ns.Save();
        Assert.DoesNotContain("PSNF", TestNamespace.Flatten(after));
        Assert.DoesNotContain(after.Values.SelectMany(t => t.Split('\n')), l => l.StartsWith("-A", StringComparison.Ordinal));
        Assert.All(after.Keys, k => Assert.True(empty.Count == 0 || empty.ContainsKey(k) || k is "nat" or "filter"));

        var none = PsRunner.Run("Get-PortForward -NetworkNamespace $ns", vars);
        Assert.Empty(none.Errors);
        Assert.Empty(none.Output);
        var notFound = PsRunner.Run("Remove-PortForward -NetworkNamespace $ns -Name web", vars);
        Assert.Equal($"PortForwardNotFound,{RemoveId}", Assert.Single(notFound.Errors).FullyQualifiedErrorId);
    }

    [RootFact]
    public void Forwards_piped_from_one_namespace_recreate_themselves_in_another()
    {
        using var a = new TestNamespace();
        using var b = new TestNamespace();
        var vars = new Dictionary<string, object?> { ["a"] = a.Name, ["b"] = b.Name };

        var setup = PsRunner.Run("""
            New-PortForward -NetworkNamespace $a -Name web -ExternalAddress 203.0.113.1 -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1
            New-PortForward -NetworkNamespace $a -Name dns -Protocol Udp -ExternalPort 5353 -InternalAddress 198.51.100.10 -InternalPort 53 -Masquerade -Description 'local dns'
            New-PortForward -NetworkNamespace $a -Name ssh.direct -ExternalAddress 203.0.113.1 -ExternalPort 2222 -InternalAddress 198.51.100.20 -InternalPort 22 -NoSnat
            New-PortForward -NetworkNamespace $a -Name web6 -ExternalAddress 2001:db8:1::1 -ExternalPort 8080 -InternalAddress 2001:db8:2::10 -InternalPort 80 -SnatAddress 2001:db8:2::1
            """, vars);
        Assert.Empty(setup.Errors);
        Assert.Equal(4, setup.Output.Count);

        var copy = PsRunner.Run("Get-PortForward -NetworkNamespace $a | New-PortForward -NetworkNamespace $b", vars);
        Assert.Empty(copy.Errors);
        Assert.Equal(4, copy.Output.Count);
        Assert.All(copy.Output, o => Assert.Equal("Created", o.Properties["Change"].Value));

        var inA = PsRunner.Run("Get-PortForward -NetworkNamespace $a", vars).Output.Select(o => ((PortForward)o.BaseObject).Definition).ToList();
        var inB = PsRunner.Run("Get-PortForward -NetworkNamespace $b", vars).Output.Select(o => (PortForward)o.BaseObject).ToList();
        Assert.Equal(new[] { Defs.Dns, Defs.SshDirect, Defs.Web, Defs.Web6 }, inA);
        Assert.Equal(inA, inB.Select(f => f.Definition));
        Assert.All(inB, f => Assert.Equal(b.Name, f.NetworkNamespace));
        Assert.All(inB, f => Assert.Equal("Complete", f.Status));

        var notFound = PsRunner.Run("Get-PortForward -NetworkNamespace $b -Name nope, 'x*'", vars);
        Assert.Equal(new[] { "PortForwardNotFound,PSNetfilter.Commands.GetPortForwardCommand" }, notFound.ErrorIds);

        // JSON written by ConvertTo-Json feeds back into New-PortForward (AddressTransformation's contract).
        using var c = new TestNamespace();
        vars["c"] = c.Name;
        var json = PsRunner.Run("Get-PortForward -NetworkNamespace $a | ConvertTo-Json -Depth 1 | ConvertFrom-Json | New-PortForward -NetworkNamespace $c", vars);
        Assert.True(json.Errors.Count == 0, string.Join(" | ", json.Errors.Select(e => e.FullyQualifiedErrorId + ": " + e.Exception.Message)));
        var inC = PsRunner.Run("Get-PortForward -NetworkNamespace $c", vars).Output.Select(o => ((PortForward)o.BaseObject).Definition).ToList();
        Assert.Equal(inA, inC);

        var filtered = PsRunner.Run("Get-PortForward -NetworkNamespace $b -Name 'W*' -Family IPv4", vars);
        Assert.Equal(new[] { "web" }, filtered.Output.Select(o => ((PortForward)o.BaseObject).Name));

        var removed = PsRunner.Run("Get-PortForward -NetworkNamespace $b -Name web* | Remove-PortForward -PassThru", vars);
        Assert.Empty(removed.Errors);
        Assert.Equal(new[] { "web", "web6" }, removed.Output.Select(o => ((PortForward)o.BaseObject).Name).Order(StringComparer.Ordinal));
        var rest = PsRunner.Run("Remove-PortForward -NetworkNamespace $b -Name * -PassThru", vars);
        Assert.Empty(rest.Errors);
        Assert.Equal(2, rest.Output.Count);
        Assert.DoesNotContain("PSNF", TestNamespace.Flatten(b.Save()) + TestNamespace.Flatten(b.Save("ip6tables-save")));
    }

    [RootFact]
    public void Default_snat_address_is_the_route_source_in_the_namespace()
    {
        using var ns = new TestNamespace();
        // A veth pair with both ends inside the namespace: a connected route, and nothing reaches the host.
        Sh.Check("ip", "-n", ns.Name, "link", "add", "psnfx0", "type", "veth", "peer", "name", "psnfx1");
        Sh.Check("ip", "-n", ns.Name, "addr", "add", "198.51.100.1/24", "dev", "psnfx0");
        Sh.Check("ip", "-n", ns.Name, "addr", "add", "2001:db8:2::1/64", "dev", "psnfx0", "nodad");
        Sh.Check("ip", "-n", ns.Name, "link", "set", "psnfx0", "up");
        Sh.Check("ip", "-n", ns.Name, "link", "set", "psnfx1", "up");
        var vars = new Dictionary<string, object?> { ["ns"] = ns.Name };

        var v4 = (PortForward)Only(PsRunner.Run("New-PortForward -NetworkNamespace $ns -ExternalPort 8080 -InternalAddress 198.51.100.10", vars)).BaseObject;
        Assert.Equal((SnatMode.Snat, Defs.Ip("198.51.100.1")), (v4.SnatMode, v4.SnatAddress));
        Assert.Equal("tcp-any-8080", v4.Name);

        // (-Name: the default name of a v6 forward on any address is also tcp-any-8080, see ValidationTests.)
        var v6 = (PortForward)Only(PsRunner.Run("New-PortForward -NetworkNamespace $ns -Name v6 -ExternalPort 8080 -InternalAddress 2001:db8:2::10", vars)).BaseObject;
        Assert.Equal(Defs.Ip("2001:db8:2::1"), v6.SnatAddress);
        Assert.Equal(IpFamily.IPv6, v6.Family);

        var noRoute = PsRunner.Run("New-PortForward -NetworkNamespace $ns -ExternalPort 9090 -InternalAddress 192.0.2.10", vars);
        Assert.Equal($"NoRouteToInternalAddress,{NewId}", Assert.Single(noRoute.Errors).FullyQualifiedErrorId);
        Assert.Empty(noRoute.Output);

        Assert.Equal(2, PsRunner.Run("Get-PortForward -NetworkNamespace $ns", vars).Output.Count);
    }

    [RootFact]
    public async Task Loopback_forward_switches_on_route_localnet_for_its_interface()
    {
        using var ns = new TestNamespace();
        Sh.Check("ip", "-n", ns.Name, "link", "add", "psnfx0", "type", "veth", "peer", "name", "psnfx1");
        using var locks = new TempDir();
        var observer = new RecordingObserver();
        var manager = new PortForwardManager(new NetfilterHost(ns.Name) { LockDirectory = locks.Path }, observer);
        var def = PortForwardDefinition.Create("lo", Protocol.Tcp, null, 8080, Defs.Ip("127.0.0.1"), 80, SnatMode.None, null, null, new ForwardExtras(InInterface: "psnfx0"));
        using (var session = await manager.OpenAsync(CancellationToken.None))
        {
            manager.PlanAdds(session, new[] { def }, false);
            Assert.Equal(ChangeKind.Created, Assert.Single(await manager.CommitAsync(session, CancellationToken.None)).Kind);
        }

        Assert.Equal("1", ns.Exec("sysctl", "-n", "net.ipv4.conf.psnfx0.route_localnet").Trim());
        Assert.Equal("0", ns.Exec("sysctl", "-n", "net.ipv4.conf.psnfx1.route_localnet").Trim());
        Assert.Equal(def, Assert.Single(await manager.GetAsync(CancellationToken.None)).Definition);
    }

    [RootFact]
    public async Task The_chain_listing_over_netlink_sees_the_module_chains_of_one_family_only()
    {
        using var ns = new TestNamespace();
        using var locks = new TempDir();
        Assert.Empty(await NftChains.ListAsync(ns.Name, IpFamily.IPv6)); // a fresh namespace has no tables

        var manager = new PortForwardManager(new NetfilterHost(ns.Name) { LockDirectory = locks.Path }, new RecordingObserver());
        using (var session = await manager.OpenAsync(CancellationToken.None))
        {
            manager.PlanAdds(session, new[] { Defs.Web6 }, false);
            await manager.CommitAsync(session, CancellationToken.None);
        }

        // The module chains ip6tables-save shows (ip6tables-save also prints built-in chains nf_tables does not
        // have yet; the listing has the ones that exist). One netlink dump, read inside the namespace.
        var listed = await NftChains.ListAsync(ns.Name, IpFamily.IPv6);
        var saved = ns.Exec("ip6tables-save").Split('\n').Where(l => l.StartsWith(':')).Select(l => l[1..l.IndexOf(' ', StringComparison.Ordinal)]).ToList();
        Assert.Equal(
            saved.Where(c => c.StartsWith("PSNF-", StringComparison.Ordinal)).OrderBy(c => c, StringComparer.Ordinal),
            listed.Select(c => c.Chain).Where(c => c.StartsWith("PSNF-", StringComparison.Ordinal)).OrderBy(c => c, StringComparer.Ordinal));
        Assert.All(listed, c => Assert.Contains(c.Chain, saved));
        Assert.Contains(("nat", "PSNF-PREROUTING"), listed);
        Assert.Contains(("filter", "PSNF-FORWARD"), listed);
        Assert.DoesNotContain(await NftChains.ListAsync(ns.Name, IpFamily.IPv4), c => c.Chain.StartsWith("PSNF-", StringComparison.Ordinal));
    }

    [Fact]
    public void Loopback_forward_on_an_interface_prefix_is_refused()
    {
        // route_localnet is set per interface: a prefix (psnfx+) names no interface to set it on.
        var ex = Assert.Throws<PortForwardValidationException>(() =>
            PortForwardDefinition.Create("lo", Protocol.Tcp, null, 8080, Defs.Ip("127.0.0.1"), 80, SnatMode.None, null, null, new ForwardExtras(InInterface: "psnfx+")));
        Assert.Equal("LoopbackNeedsInInterface", ex.ErrorId);
    }

    public static IEnumerable<object[]> Backends() =>
        new[] { new object[] { IptablesBackendKind.Nft }, new object[] { IptablesBackendKind.Legacy } };

    private static IptablesToolset BackendOf(IptablesBackendKind kind)
    {
        var s = kind == IptablesBackendKind.Nft ? "nft" : "legacy";
        string Tool(string name) => ExecutableLocator.Find(name) ?? throw new InvalidOperationException(name + " is not installed");
        return new IptablesToolset(kind, "test", Tool($"iptables-{s}-save"), Tool($"iptables-{s}-restore"), Tool($"ip6tables-{s}-save"), Tool($"ip6tables-{s}-restore"));
    }

    private static PortForwardDefinition[] ManyDefinitions() => new[]
    {
        Defs.Web,
        Defs.Dns,
        Defs.SshDirect,
        Defs.Web6,
        PortForwardDefinition.Create(null, Protocol.Udp, null, 53, Defs.Ip("2001:db8:2::53"), 5353, SnatMode.Masquerade, null, "v6 \"dns\"\nsecond line, ünïcode"),
        PortForwardDefinition.Create("v6-none", Protocol.Tcp, Defs.Ip("2001:db8:1::1"), 2222, Defs.Ip("2001:db8:2::22"), 22, SnatMode.None, null, null),
        PortForwardDefinition.Create(new string('n', 64), Protocol.Tcp, null, 65535, Defs.Ip("198.51.100.40"), 1, SnatMode.Snat, Defs.Ip("198.51.100.1"), new string('é', 60)),
        PortForwardDefinition.Create("quote", Protocol.Udp, Defs.Ip("203.0.113.2"), 1, Defs.Ip("198.51.100.41"), null, SnatMode.None, null, "it's a \\ \"quoted\" one"),
        PortForwardDefinition.Create(
            "range", Protocol.Udp, null, 8000, Defs.Ip("198.51.100.42"), 9000, SnatMode.Masquerade, null, null,
            new ForwardExtras(8010, 9010, new[] { PortForwardDefinition.ParseNetwork("192.0.2.0/24"), PortForwardDefinition.ParseNetwork("10.0.0.7") }, "wan+", IncludeLocal: true)),
        PortForwardDefinition.Create("wide", Protocol.Tcp, Defs.Ip("203.0.113.3"), 4000, Defs.Ip("198.51.100.43"), 80, SnatMode.Snat, Defs.Ip("198.51.100.1"), null, new ForwardExtras(ExternalPortEnd: 4200, InInterface: "eth0")),
        PortForwardDefinition.Create("range6", Protocol.Tcp, null, 30000, Defs.Ip("2001:db8:2::44"), 30000, SnatMode.None, null, null, new ForwardExtras(30015, null, new[] { PortForwardDefinition.ParseNetwork("2001:db8:9::/48") }, IncludeLocal: true)),
    };

    [RootFact]
    public Task Core_round_trips_through_the_nft_kernel_and_leaves_foreign_rules_alone() => RoundTripThroughKernel(IptablesBackendKind.Nft);

    [RootFact]
    public Task Core_round_trips_through_the_legacy_kernel_and_leaves_foreign_rules_alone() => RoundTripThroughKernel(IptablesBackendKind.Legacy);

    private static async Task RoundTripThroughKernel(IptablesBackendKind kind)
    {
        using var ns = new TestNamespace();
        var be = kind == IptablesBackendKind.Nft ? "nft" : "legacy";
        var backend = BackendOf(kind);
        ns.ExecIn(Golden.Read(be, "foreign-only.v4.save"), backend.Restore4, "-c");
        ns.ExecIn(Golden.Read(be, "foreign-only.v6.save"), backend.Restore6, "-c");
        var foreign4 = ns.Save(backend.Save4);
        var foreign6 = ns.Save(backend.Save6);

        using var locks = new TempDir();
        {
            var observer = new RecordingObserver();
            var host = new NetfilterHost(ns.Name) { LockDirectory = locks.Path };
            var manager = new PortForwardManager(host, observer, new IptablesNetfilterBackend(host, backend));
            var defs = ManyDefinitions();

            async Task<IReadOnlyList<ChangeResult>> Add(IEnumerable<PortForwardDefinition> items)
            {
                using var session = await manager.OpenAsync(CancellationToken.None);
                manager.PlanAdds(session, items.ToList(), force: false);
                return await manager.CommitAsync(session, CancellationToken.None);
            }

            async Task<IReadOnlyList<ChangeResult>> Remove(params NameSelector[] selectors)
            {
                using var session = await manager.OpenAsync(CancellationToken.None);
                manager.PlanRemoves(session, selectors);
                return await manager.CommitAsync(session, CancellationToken.None);
            }

            var created = await Add(defs);
            Assert.Empty(observer.Failures);
            Assert.All(created, r => Assert.Equal(ChangeKind.Created, r.Kind));

            var read = await manager.GetAsync(CancellationToken.None);
            Assert.DoesNotContain(observer.Warnings, w => !w.Contains("was 0", StringComparison.Ordinal));
            Assert.Equal(defs.OrderBy(d => d.Name, StringComparer.Ordinal), read.Select(f => f.Definition));
            Assert.Equal(defs.OrderBy(d => d.Name, StringComparer.Ordinal).Select(d => d.Description), read.Select(f => f.Description));
            Assert.All(read, f => Assert.Equal("Complete", f.Status));

            // Jumps sit at position 1; every foreign rule is still there, in the same order, byte for byte.
            foreach (var (save, foreign) in new[] { (backend.Save4, foreign4), (backend.Save6, foreign6) })
            {
                var now = ns.Save(save);
                Assert.Equal(foreign.Keys, now.Keys);
                foreach (var (table, text) in foreign)
                {
                    Assert.Equal(text.Split('\n'), now[table].Split('\n').Where(l => !l.Contains("PSNF-", StringComparison.Ordinal)));
                }

                var rs = IptablesSaveParser.Parse(string.Concat(now.Values), save == backend.Save4 ? IpFamily.IPv4 : IpFamily.IPv6);
                Assert.Equal("-j PSNF-PREROUTING", rs.GetTable("nat")!.Rules.First(r => r.Chain == "PREROUTING").Spec);
                Assert.Equal("-j PSNF-POSTROUTING", rs.GetTable("nat")!.Rules.First(r => r.Chain == "POSTROUTING").Spec);
                Assert.Equal("-j PSNF-FORWARD", rs.GetTable("filter")!.Rules.First(r => r.Chain == "FORWARD").Spec);
            }

            // Idempotent: nothing changes the second time.
            var beforeAgain = TestNamespace.Flatten(ns.Save(backend.Save4)) + TestNamespace.Flatten(ns.Save(backend.Save6));
            Assert.All(await Add(defs), r => Assert.Equal(ChangeKind.Unchanged, r.Kind));
            Assert.Equal(beforeAgain, TestNamespace.Flatten(ns.Save(backend.Save4)) + TestNamespace.Flatten(ns.Save(backend.Save6)));

            // Remove some by name (delete by position, highest first), then the rest.
            var some = await Remove(NameSelector.Parse("web"), NameSelector.Parse("web6"), NameSelector.Parse("dns"));
            Assert.Equal(3, some.Count);
            Assert.Empty(observer.Failures);
            var left = await manager.GetAsync(CancellationToken.None);
            Assert.Equal(defs.Where(d => d.Name is not ("web" or "web6" or "dns")).OrderBy(d => d.Name, StringComparer.Ordinal), left.Select(f => f.Definition));
            Assert.All(left, f => Assert.Equal("Complete", f.Status));

            var rest = await Remove(NameSelector.Parse("*"));
            Assert.Equal(defs.Length - 3, rest.Count);
            Assert.Empty(observer.Failures);
            Assert.Empty(await manager.GetAsync(CancellationToken.None));

            // Back to exactly the foreign rulesets: chains and jumps gone too.
            Assert.Equal(foreign4, ns.Save(backend.Save4));
            Assert.Equal(foreign6, ns.Save(backend.Save6));
        }
    }
}
