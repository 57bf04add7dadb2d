using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

public sealed class PortForwardManagerTests : IDisposable
{
    private readonly string _lockDir = Path.Combine(Path.GetTempPath(), "psnfx-locks-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_lockDir))
        {
            Directory.Delete(_lockDir, recursive: true);
        }
    }

    private sealed class Rig
    {
        public Rig(string lockDir, string save4, string save6, string? ns)
        {
            Runner.SaveText4 = save4;
            Runner.SaveText6 = save6;
            Host = new NetfilterHost(ns, Runner, m => Log.Add(m))
            {
                SkipSystemChecks = true,
                LockDirectory = lockDir,
                LockTimeout = TimeSpan.FromMilliseconds(300),
                ProcReader = (_, path) => Task.FromResult(Runner.ReadProcSys(path)),
                ProcWriter = Runner.WriteProcSysAsync,
                ChainLister = Runner.ListChainsAsync,
            };
            Manager = new PortForwardManager(Host, Observer, new IptablesNetfilterBackend(Host, FakeProcessRunner.Backend));
        }

        public FakeProcessRunner Runner { get; } = new();

        public RecordingObserver Observer { get; } = new();

        public List<string> Log { get; } = new();

        public NetfilterHost Host { get; }

        public PortForwardManager Manager { get; }

        public async Task<IReadOnlyList<ChangeResult>> NewAsync(bool force, params PortForwardRequest[] requests)
        {
            var defs = await Manager.ResolveAsync(requests, CancellationToken.None);
            using var session = await Manager.OpenAsync(CancellationToken.None);
            Manager.PlanAdds(session, defs, force);
            return await Manager.CommitAsync(session, CancellationToken.None);
        }

        public Task<IReadOnlyList<ChangeResult>> NewAsync(bool force, params PortForwardDefinition[] defs) =>
            NewAsync(force, defs.Select(Request).ToArray());

        /// <summary>New-PortForward's streamed change: opened on the first forwards, then one PlanAdds per forward.</summary>
        public async Task<IReadOnlyList<ChangeResult>?> StreamAsync(bool force, IReadOnlyList<PortForwardDefinition> defs, Action<ChangeSession>? beforeCommit = null)
        {
            var first = defs.Take(IptablesNetfilterBackend.StreamFrom).ToList();
            using var session = await Manager.TryOpenStreamingAsync(first, CancellationToken.None);
            if (session is null)
            {
                return null;
            }

            Manager.PlanAdds(session, first, force);
            foreach (var def in defs.Skip(first.Count))
            {
                Manager.PlanAdds(session, new[] { def }, force);
            }

            beforeCommit?.Invoke(session);
            return await Manager.CommitAsync(session, CancellationToken.None);
        }

        public async Task<IReadOnlyList<ChangeResult>> RemoveAsync(params NameSelector[] selectors)
        {
            using var session = await Manager.OpenAsync(CancellationToken.None);
            Manager.PlanRemoves(session, selectors);
            return await Manager.CommitAsync(session, CancellationToken.None);
        }
    }

    private Rig Make(string save4 = "", string save6 = "", string? ns = null) => new(_lockDir, save4, save6, ns);

    private static string OwnedOnly => Golden.Read("nft", "owned-only.v4.save");

    private static PortForwardRequest Request(PortForwardDefinition d) =>
        new(d.Name, d.Protocol, d.ExternalAddress, d.ExternalPort, d.InternalAddress, d.InternalPort, d.SnatMode, d.SnatAddress, d.Description);

    private static NameSelector Literal(string name) => NameSelector.Parse(name);

    private static NameSelector Pattern(string text) => NameSelector.Parse(text);

    [Fact]
    public async Task Same_definition_is_Unchanged_and_nothing_is_restored()
    {
        var rig = Make(OwnedOnly);
        var results = await rig.NewAsync(false, Defs.Web, Defs.Dns);

        Assert.Equal(new[] { ("web", ChangeKind.Unchanged), ("dns", ChangeKind.Unchanged) }, results.Select(r => (r.Forward.Name, r.Kind)));
        Assert.All(results, r => Assert.False(r.Changed));
        Assert.Equal(0, rig.Runner.RestoreCount);
        Assert.Empty(rig.Observer.ShouldProcessCalls);
        Assert.Empty(rig.Observer.Failures);
        Assert.Empty(rig.Runner.SysctlWrites);
        Assert.Contains(rig.Observer.Verboses, v => v.Contains("'web' already exists with the same definition", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Other_definition_without_force_is_PortForwardExists()
    {
        var rig = Make(OwnedOnly);
        var changed = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), 80, SnatMode.Snat, Defs.Ip("198.51.100.1"), null);
        var results = await rig.NewAsync(false, changed);

        Assert.Empty(results);
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("PortForwardExists", error.ErrorId);
        Assert.Equal(FailureKind.ResourceExists, error.Kind);
        Assert.Contains("InternalPort 8080 -> 80", error.Message);
        Assert.Equal(0, rig.Runner.RestoreCount);
    }

    [Fact]
    public async Task Other_definition_with_force_is_Replaced_in_one_payload()
    {
        var rig = Make(OwnedOnly);
        var changed = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), 80, SnatMode.Snat, Defs.Ip("198.51.100.1"), "new");
        var results = await rig.NewAsync(true, changed);

        var r = Assert.Single(results);
        Assert.Equal(ChangeKind.Replaced, r.Kind);
        Assert.True(r.Changed);
        Assert.Equal(changed, r.Forward.Definition);
        var (family, payload) = Assert.Single(rig.Runner.Restores);
        Assert.Equal(IpFamily.IPv4, family);
        var lines = payload.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(new[] { "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 1", "-D PSNF-FORWARD 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("-A", StringComparison.Ordinal) && l.Contains("psnf:v1:web:", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l is ":PSNF-PREROUTING - [0:0]" or ":PSNF-POSTROUTING - [0:0]" or ":PSNF-FORWARD - [0:0]" || l.StartsWith("-I", StringComparison.Ordinal) || l.StartsWith("-X", StringComparison.Ordinal));
        ChangePlannerTests.AssertOnlyTouchesModuleChains(ToPayload(payload));
        var (target, action) = Assert.Single(rig.Observer.ShouldProcessCalls);
        Assert.StartsWith("Replace port forward (was: web Tcp 203.0.113.1:8080 -> 198.51.100.10:8080", action);
        Assert.Contains("198.51.100.10:80", target);
        var restore = rig.Runner.Requests.Single(q => q.Program == FakeProcessRunner.Restore4);
        Assert.Equal(new[] { "-w", "--noflush" }, restore.Arguments);
    }

    [Fact]
    public async Task Incomplete_forward_needs_force_and_then_is_restored_whole()
    {
        // web without its FORWARD rule: the DNAT and SNAT rules still carry the whole definition.
        var text = string.Join('\n', OwnedOnly.Split('\n').Where(l => !l.Contains("psnf:v1:web:fwd", StringComparison.Ordinal)));
        var rig = Make(text);
        Assert.Empty(await rig.NewAsync(false, Defs.Web));
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("PortForwardIncomplete", error.ErrorId);
        Assert.Contains("missing Forward", error.Message);
        Assert.Equal(0, rig.Runner.RestoreCount);

        var forced = Make(text);
        Assert.Equal(ChangeKind.Replaced, Assert.Single(await forced.NewAsync(true, Defs.Web)).Kind);
        var lines = Assert.Single(forced.Runner.Restores).Payload.Split('\n');
        Assert.Equal(new[] { "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("-A", StringComparison.Ordinal) && l.Contains(" psnf:v1:web:", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Drifted_forward_missing_its_snat_rule_is_restored_whole_with_force()
    {
        var rig = Make(Golden.Read("nft", "owned-drift.v4.save"));
        Assert.Equal(ChangeKind.Replaced, Assert.Single(await rig.NewAsync(true, Defs.Web)).Kind);
        var lines = Assert.Single(rig.Runner.Restores).Payload.Split('\n');
        Assert.Equal(new[] { "-D PSNF-PREROUTING 1", "-D PSNF-FORWARD 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("-A", StringComparison.Ordinal) && l.Contains(" psnf:v1:web:", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains("--to-source 198.51.100.1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Drifted_forward_missing_its_snat_rule_is_reported_incomplete()
    {
        var rig = Make(Golden.Read("nft", "owned-drift.v4.save"));
        Assert.Empty(await rig.NewAsync(false, Defs.Web));
        Assert.Equal("PortForwardIncomplete", Assert.Single(rig.Observer.Failures).ErrorId);
    }

    [Fact]
    public async Task Overlapping_external_endpoint_is_ExternalEndpointInUse()
    {
        var rig = Make(OwnedOnly);
        var sameEndpoint = PortForwardDefinition.Create("web2", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var anyOverSpecific = PortForwardDefinition.Create("ssh2", Protocol.Tcp, null, 2222, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var specificUnderAny = PortForwardDefinition.Create("dns2", Protocol.Udp, Defs.Ip("203.0.113.7"), 5353, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var otherProtocol = PortForwardDefinition.Create("web-udp", Protocol.Udp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var otherAddress = PortForwardDefinition.Create("web-b", Protocol.Tcp, Defs.Ip("203.0.113.2"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);

        var results = await rig.NewAsync(false, sameEndpoint, anyOverSpecific, specificUnderAny, otherProtocol, otherAddress);

        Assert.Equal(new[] { "web-udp", "web-b" }, results.Select(r => r.Forward.Name));
        Assert.All(results, r => Assert.Equal(ChangeKind.Created, r.Kind));
        Assert.Equal(3, rig.Observer.Failures.Count);
        Assert.All(rig.Observer.Failures, f => Assert.Equal("ExternalEndpointInUse", f.ErrorId));
        Assert.Equal(new object?[] { "web2", "ssh2", "dns2" }, rig.Observer.Failures.Select(f => f.Target));
        Assert.Contains("'web' already forwards tcp 203.0.113.1:8080", rig.Observer.Failures[0].Message);
        Assert.Single(rig.Runner.Restores);
    }

    [Fact]
    public async Task Two_new_forwards_on_one_endpoint_in_one_batch_clash()
    {
        var rig = Make();
        var a = Defs.Simple("a", 9000);
        var b = Defs.Simple("b", 9000);
        var results = await rig.NewAsync(false, a, b);
        Assert.Equal("a", Assert.Single(results).Forward.Name);
        Assert.Equal("ExternalEndpointInUse", Assert.Single(rig.Observer.Failures).ErrorId);
    }

    [Fact]
    public async Task Same_name_twice_in_one_batch()
    {
        var rig = Make();
        var a = Defs.Simple("a", 9000);
        var a2 = Defs.Simple("a", 9001);
        var results = await rig.NewAsync(false, a, a, a2);
        Assert.Equal(ChangeKind.Created, Assert.Single(results).Kind);
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("PortForwardExists", error.ErrorId);
        Assert.Contains("earlier in the same pipeline", error.Message);
        Assert.Equal(3, Assert.Single(rig.Runner.Restores).Payload.Split('\n').Count(l => l.Contains(" psnf:v1:", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("iptables-restore: line {0} failed\n")]
    [InlineData("iptables-restore v1.8.9 (nf_tables): Couldn't load match `conntrack'\nError occurred at line: {0}\nTry `iptables-restore -h' for more information.\n")]
    public async Task A_refused_forward_is_dropped_and_the_rest_applied_again(string stderrFormat)
    {
        var rig = Make();
        var a = Defs.Simple("a", 9000);
        var bad = Defs.Simple("bad", 9001);
        var c = Defs.Simple("c", 9002);
        var failedLine = 0;
        rig.Runner.RestoreAnswer = (_, index, stdin) =>
        {
            if (index > 0)
            {
                return new ProcessResult(0, string.Empty, string.Empty);
            }

            failedLine = Array.FindIndex(stdin.Split('\n'), l => l.Contains("psnf:v1:bad:snat", StringComparison.Ordinal)) + 1;
            return new ProcessResult(1, string.Empty, string.Format(System.Globalization.CultureInfo.InvariantCulture, stderrFormat, failedLine));
        };

        var results = await rig.NewAsync(false, a, bad, c);

        Assert.Equal(new[] { "a", "c" }, results.Select(r => r.Forward.Name));
        Assert.All(results, r => Assert.Equal(ChangeKind.Created, r.Kind));
        Assert.Equal(2, rig.Runner.RestoreCount);
        Assert.Contains("psnf:v1:bad:", rig.Runner.Restores[0].Payload);
        Assert.DoesNotContain("psnf:v1:bad:", rig.Runner.Restores[1].Payload);
        Assert.Contains("psnf:v1:a:fwd", rig.Runner.Restores[1].Payload);
        Assert.Contains("psnf:v1:c:fwd", rig.Runner.Restores[1].Payload);
        var error = Assert.IsType<CommandFailedException>(Assert.Single(rig.Observer.Failures));
        Assert.Equal("IptablesCommandFailed", error.ErrorId);
        Assert.Equal("bad", error.Target);
        Assert.True(failedLine > 1);
        Assert.Equal(failedLine, error.FailedLine);
        Assert.Contains("psnf:v1:bad:snat", error.FailedInput);
        Assert.Equal(1, error.ExitCode);
    }

    [Fact]
    public async Task A_refusal_not_tied_to_a_forward_fails_the_whole_change()
    {
        var rig = Make();
        rig.Runner.RestoreAnswer = (_, _, _) => new ProcessResult(4, string.Empty, "iptables-restore: line 1 failed\n");
        var ex = await Assert.ThrowsAsync<CommandFailedException>(() => rig.NewAsync(false, Defs.Simple("a", 9000)));
        Assert.Equal(1, ex.FailedLine);
        Assert.Equal("*nat", ex.FailedInput);
        Assert.Null(ex.Target);
        Assert.Equal(1, rig.Runner.RestoreCount);
    }

    [Fact]
    public async Task Default_snat_address_comes_from_the_route()
    {
        var rig = Make();
        rig.Runner.Routes["198.51.100.10"] = "198.51.100.1";
        var request = new PortForwardRequest("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), null, SnatMode.Snat, null, null);

        var results = await rig.NewAsync(false, request, request with { Name = "web-2", ExternalPort = 8081 });

        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.Equal(Defs.Ip("198.51.100.1"), r.Forward.SnatAddress));
        Assert.Equal(Defs.Web, results[0].Forward.Definition);
        Assert.Equal(new[] { "route get 198.51.100.10" }, rig.Runner.RouteQueries); // one lookup per distinct address
        // Two ip processes, run at once: the route lookups, and the gateway's interfaces for the checks.
        var ip = rig.Runner.Requests.Where(r => Path.GetFileName(r.Program) == "ip").Select(r => string.Join(' ', r.Arguments)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(new[] { "-force -j -batch -", "-j addr show" }, ip);
        Assert.Contains("--to-source 198.51.100.1", rig.Runner.Restores[0].Payload);
        Assert.Contains(rig.Observer.Verboses, v => v.Contains("SNAT source for 198.51.100.10: 198.51.100.1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Route_lookup_in_a_namespace_uses_ip_dash_n_and_resolves_v6()
    {
        var rig = Make(ns: "psnfx-fake");
        rig.Runner.Routes["2001:db8:2::10"] = "2001:db8:2::1";
        var request = new PortForwardRequest("web6", Protocol.Tcp, Defs.Ip("2001:db8:1::1"), 8080, Defs.Ip("2001:db8:2::10"), 80, SnatMode.Snat, null, null);

        var results = await rig.NewAsync(false, request);

        Assert.Equal(Defs.Web6, Assert.Single(results).Forward.Definition);
        Assert.Equal("psnfx-fake", results[0].Forward.NetworkNamespace);
        var ip = rig.Runner.Requests.First(r => Path.GetFileName(r.Program) == "ip" && r.Arguments.Contains("-batch"));
        Assert.Equal(new[] { "-n", "psnfx-fake", "-force", "-j", "-batch", "-" }, ip.Arguments);
        var (family, _) = Assert.Single(rig.Runner.Restores);
        Assert.Equal(IpFamily.IPv6, family);
    }

    [Fact]
    public async Task No_route_is_NoRouteToInternalAddress_and_nothing_is_applied()
    {
        var rig = Make();
        var request = new PortForwardRequest("web", Protocol.Tcp, null, 8080, Defs.Ip("198.51.100.99"), null, SnatMode.Snat, null, null);
        var defs = await rig.Manager.ResolveAsync(new[] { request }, CancellationToken.None);

        Assert.Empty(defs);
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("NoRouteToInternalAddress", error.ErrorId);
        Assert.Equal(Defs.Ip("198.51.100.99"), error.Target);
        Assert.Contains("this host has no route to 198.51.100.99", error.Message);

        var results = await rig.NewAsync(false, request);
        Assert.Empty(results);
        Assert.Equal(0, rig.Runner.RestoreCount);
    }

    [Fact]
    public async Task Resolve_leaves_out_only_the_unresolvable_request()
    {
        var rig = Make();
        rig.Runner.Routes["198.51.100.10"] = "198.51.100.1";
        var ok = new PortForwardRequest("ok", Protocol.Tcp, null, 8080, Defs.Ip("198.51.100.10"), null, SnatMode.Snat, null, null);
        var missing = ok with { Name = "missing", InternalAddress = Defs.Ip("198.51.100.99") };
        var masq = ok with { Name = "masq", InternalAddress = Defs.Ip("198.51.100.99"), SnatMode = SnatMode.Masquerade };
        var defs = await rig.Manager.ResolveAsync(new[] { ok, missing, masq }, CancellationToken.None);

        Assert.Equal(new[] { "ok", "masq" }, defs.Select(d => d.Name));
        Assert.Equal(new[] { "route get 198.51.100.10", "route get 198.51.100.99" }, rig.Runner.RouteQueries);
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("NoRouteToInternalAddress", error.ErrorId);
        Assert.Equal(Defs.Ip("198.51.100.99"), error.Target);
    }

    [Fact]
    public async Task Literal_remove_of_a_missing_name_is_PortForwardNotFound()
    {
        var rig = Make(OwnedOnly);
        var results = await rig.RemoveAsync(Literal("nope"), Pattern("zz*"));

        Assert.Empty(results);
        var error = Assert.Single(rig.Observer.Failures); // the pattern that matched nothing is not an error
        Assert.Equal("PortForwardNotFound", error.ErrorId);
        Assert.Equal(FailureKind.ObjectNotFound, error.Kind);
        Assert.Equal("nope", error.Target);
        Assert.Equal(0, rig.Runner.RestoreCount);
    }

    [Fact]
    public async Task Remove_by_name_deletes_only_that_forward()
    {
        var rig = Make(OwnedOnly);
        var results = await rig.RemoveAsync(Literal("dns"));

        var r = Assert.Single(results);
        Assert.Equal((ChangeKind.Removed, "dns"), (r.Kind, r.Forward.Name));
        var lines = Assert.Single(rig.Runner.Restores).Payload.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(new[] { "*nat", "-D PSNF-POSTROUTING 2", "-D PSNF-PREROUTING 2", "COMMIT", "*filter", "-D PSNF-FORWARD 2", "COMMIT" }, lines);
        Assert.Equal(("dns Udp *:5353 -> 198.51.100.10:53 masquerade", "Remove port forward"), Assert.Single(rig.Observer.ShouldProcessCalls));
        Assert.Empty(rig.Runner.SysctlWrites);
    }

    [Fact]
    public async Task Removing_a_udp_forward_deletes_its_conntrack_entries_once_the_rules_are_gone()
    {
        var rig = Make(OwnedOnly);
        var results = await rig.RemoveAsync(Literal("dns"));

        Assert.Equal(ChangeKind.Removed, Assert.Single(results).Kind);
        Assert.Equal(new[] { "-f ipv4 -p udp --orig-port-dst 5353 --dst-nat 198.51.100.10 --reply-port-src 53" }, rig.Runner.ConntrackDeletes);
        var programs = rig.Runner.Requests.Select(r => Path.GetFileName(FakeProcessRunner.Unwrap(r).Program)).ToList();
        Assert.True(programs.IndexOf("conntrack") > programs.IndexOf(Path.GetFileName(FakeProcessRunner.Restore4)), string.Join(", ", programs));
        Assert.Empty(rig.Observer.Warnings);
    }

    [Fact]
    public async Task Removing_or_keeping_tcp_forwards_leaves_conntrack_alone()
    {
        var rig = Make(OwnedOnly);
        await rig.RemoveAsync(Literal("web"));
        Assert.Equal(ChangeKind.Unchanged, Assert.Single(await rig.NewAsync(false, Defs.Dns)).Kind); // nothing to cut

        Assert.Empty(rig.Runner.ConntrackDeletes);
    }

    [Fact]
    public async Task Replacing_a_udp_forward_cuts_the_flows_to_its_old_target()
    {
        var rig = MakeWithKernel(Golden.Read("nft", "owned-only.v4.save"));
        var moved = PortForwardDefinition.Create("dns", Protocol.Udp, null, 5353, Defs.Ip("198.51.100.40"), 53, SnatMode.Masquerade, null, "local dns");

        var r = Assert.Single(await rig.NewAsync(true, moved));

        Assert.Equal(ChangeKind.Replaced, r.Kind);
        Assert.Equal(new[] { "-f ipv4 -p udp --orig-port-dst 5353 --dst-nat 198.51.100.10 --reply-port-src 53" }, rig.Runner.ConntrackDeletes);
    }

    [Fact]
    public async Task A_failed_conntrack_delete_is_a_warning_and_the_removal_stands()
    {
        var rig = Make(OwnedOnly);
        rig.Runner.ConntrackAnswer = new ProcessResult(1, string.Empty, "conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n");

        var r = Assert.Single(await rig.RemoveAsync(Literal("dns")));

        Assert.Equal(ChangeKind.Removed, r.Kind);
        var warning = Assert.Single(rig.Observer.Warnings);
        Assert.Contains("'dns'", warning, StringComparison.Ordinal);
        Assert.Contains("invalid parameters", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task New_warns_about_a_forward_that_cannot_work_on_this_gateway_and_still_applies_it()
    {
        var rig = Make();
        var web = new PortForwardRequest("web", Protocol.Tcp, Defs.Ip("192.0.2.99"), 8080, Defs.Ip("198.51.100.10"), 8080, SnatMode.Masquerade, null, null, new ForwardExtras(InInterface: "eth9"));

        var r = Assert.Single(await rig.NewAsync(false, web));

        Assert.Equal(ChangeKind.Created, r.Kind);
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("(ExternalAddressNotLocal)", StringComparison.Ordinal) && w.Contains("192.0.2.99", StringComparison.Ordinal));
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("(InterfaceNotFound)", StringComparison.Ordinal) && w.Contains("'eth9'", StringComparison.Ordinal));
        Assert.Equal(1, rig.Runner.Requests.Count(q => string.Join(' ', q.Arguments).EndsWith("-j addr show", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task When_the_interfaces_cannot_be_read_new_says_so_and_applies_the_forward()
    {
        var rig = Make();
        rig.Runner.AddrAnswer = new ProcessResult(1, string.Empty, "Cannot open netlink socket: Permission denied\n");

        var r = Assert.Single(await rig.NewAsync(false, Defs.Simple("a", 9000)));

        Assert.Equal(ChangeKind.Created, r.Kind);
        var warning = Assert.Single(rig.Observer.Warnings);
        Assert.Contains("Permission denied", warning, StringComparison.Ordinal);
        Assert.Contains("exit", warning, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Remove_all_by_pattern_removes_chains_too_and_each_forward_once()
    {
        var rig = Make(OwnedOnly, Golden.Read("nft", "owned.v6.save"));
        var results = await rig.RemoveAsync(Pattern("*"), Literal("web"));

        Assert.Equal(new[] { "dns", "ssh.direct", "web", "web6" }, results.Select(r => r.Forward.Name).Order(StringComparer.Ordinal));
        Assert.All(results, r => Assert.Equal(ChangeKind.Removed, r.Kind));
        Assert.Equal(new[] { IpFamily.IPv4, IpFamily.IPv6 }, rig.Runner.Restores.Select(x => x.Family));
        Assert.All(rig.Runner.Restores, x => Assert.Contains("-X PSNF-FORWARD", x.Payload));
        Assert.Equal(4, rig.Observer.ShouldProcessCalls.Count);
    }

    [Fact]
    public async Task WhatIf_asks_but_restores_nothing()
    {
        var rig = Make(OwnedOnly);
        rig.Observer.Confirm = false;

        Assert.Empty(await rig.NewAsync(false, Defs.Simple("a", 9000)));
        Assert.Empty(await rig.RemoveAsync(Literal("web")));
        var webChanged = PortForwardDefinition.Create("web", Protocol.Tcp, null, 8080, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, null);
        Assert.Empty(await rig.NewAsync(true, webChanged));

        Assert.Equal(0, rig.Runner.RestoreCount);
        Assert.Empty(rig.Runner.SysctlWrites);
        Assert.Empty(rig.Observer.Failures);
        Assert.Equal(
            new[] { "Create port forward", "Remove port forward" },
            rig.Observer.ShouldProcessCalls.Take(2).Select(c => c.Action));
        Assert.Equal("a Tcp *:9000 -> 198.51.100.30:9000 masquerade", rig.Observer.ShouldProcessCalls[0].Target);
        Assert.StartsWith("Replace port forward", rig.Observer.ShouldProcessCalls[2].Action);
        Assert.DoesNotContain(rig.Runner.Requests, r => FakeProcessRunner.Unwrap(r).Program.EndsWith("restore", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("0", true)]
    [InlineData("1", false)]
    public async Task Forwarding_is_enabled_only_when_it_is_off(string current, bool expectWrite)
    {
        var rig = Make();
        rig.Runner.Sysctl["net.ipv4.ip_forward"] = current;
        rig.Runner.Sysctl["net.ipv6.conf.all.forwarding"] = current;

        await rig.NewAsync(false, Defs.Simple("a", 9000), Defs.Simple("b6", 9000, internalAddress: "2001:db8:2::30"));

        Assert.Equal(expectWrite ? new[] { "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1" } : Array.Empty<string>(), rig.Runner.SysctlWrites);
        Assert.Equal(expectWrite ? 2 : 0, rig.Observer.Warnings.Count(w => w.Contains("was 0", StringComparison.Ordinal)));
        // Read and written in-process through /proc/sys (no sysctl process).
        Assert.Equal(new[] { "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding" }, rig.Runner.ProcReads.Distinct().Order(StringComparer.Ordinal));
        Assert.DoesNotContain(rig.Runner.Requests, r => Path.GetFileName(FakeProcessRunner.Unwrap(r).Program) == "sysctl");
        Assert.Equal(expectWrite ? 2 : 0, rig.Log.Count(l => l.StartsWith("Writing 1 to /proc/sys/net/", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Forwarding_is_checked_only_for_families_that_gained_forwards()
    {
        var rig = Make(OwnedOnly);
        rig.Runner.Sysctl["net.ipv6.conf.all.forwarding"] = "0";
        await rig.NewAsync(false, Defs.Simple("a", 9000));
        Assert.DoesNotContain(rig.Runner.Requests, r => r.Arguments.Contains("net.ipv6.conf.all.forwarding"));
        Assert.Empty(rig.Runner.SysctlWrites);
    }

    [Fact]
    public async Task In_a_namespace_every_kernel_command_runs_through_nsenter()
    {
        var rig = Make(ns: "psnfx-fake");
        rig.Runner.Sysctl["net.ipv4.ip_forward"] = "0";
        await rig.NewAsync(false, Defs.Simple("a", 9000));

        var enter = new[] { "--net=/run/netns/psnfx-fake", "--" };
        var saves = rig.Runner.Requests.Where(r => r.Arguments.Contains(FakeProcessRunner.Save4) || r.Arguments.Contains(FakeProcessRunner.Save6)).ToList();
        Assert.Equal(2, saves.Count);
        Assert.All(saves, r => Assert.Equal(enter, r.Arguments.Take(2)));
        var restore = rig.Runner.Requests.Single(r => r.Arguments.Contains(FakeProcessRunner.Restore4));
        Assert.Equal(enter.Concat(new[] { FakeProcessRunner.Restore4, "-w", "--noflush" }), restore.Arguments);
        Assert.Equal("nsenter", Path.GetFileName(restore.Program));
        Assert.NotNull(restore.StandardInput);
        Assert.Equal(new[] { "net.ipv4.ip_forward=1" }, rig.Runner.SysctlWrites); // in-process, in the namespace
        Assert.Contains("Writing 1 to /proc/sys/net/ipv4/ip_forward in network namespace psnfx-fake", rig.Log);
        Assert.Contains(rig.Log, l => l.StartsWith("Running: ", StringComparison.Ordinal) && l.Contains("nsenter --net=/run/netns/psnfx-fake -- ", StringComparison.Ordinal));
        Assert.Contains(rig.Log, l => l.Contains("payload (IPv4)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Get_reads_both_families()
    {
        var rig = Make(Golden.Read("legacy", "owned.v4.save"), Golden.Read("legacy", "owned.v6.save"));
        var forwards = await rig.Manager.GetAsync(CancellationToken.None);
        Assert.Equal(new[] { "dns", "ssh.direct", "web", "web6" }, forwards.Select(f => f.Name));
        Assert.Equal(new[] { "-c" }, rig.Runner.Requests.Single(r => r.Program == FakeProcessRunner.Save6).Arguments);
        Assert.Equal(0, rig.Runner.RestoreCount);
    }

    [Fact]
    public async Task Unreadable_tagged_rules_become_warnings()
    {
        var text = OwnedOnly.Replace("COMMIT\n*nat", "[0:0] -A PSNF-FORWARD -m comment --comment \"psnf:v1:x:fwd\" -j ACCEPT\nCOMMIT\n*nat", StringComparison.Ordinal);
        var rig = Make(text);
        var forwards = await rig.Manager.GetAsync(CancellationToken.None);
        Assert.Equal(3, forwards.Count);
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("'x'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failing_save_is_a_CommandFailedException()
    {
        var rig = Make();
        rig.Runner.SaveExitCode = 1;
        var ex = await Assert.ThrowsAsync<CommandFailedException>(() => rig.Manager.GetAsync(CancellationToken.None));
        Assert.Equal(1, ex.ExitCode);
        Assert.Contains("cannot read", ex.StandardError);
    }

    [Fact]
    public async Task Unparsable_save_output_is_a_RulesetParseException()
    {
        var rig = Make("*filter\n-A FORWARD -j ACCEPT\n");
        var ex = await Assert.ThrowsAsync<RulesetParseException>(() => rig.Manager.GetAsync(CancellationToken.None));
        Assert.Equal("RulesetParseError", ex.ErrorId);
    }

    [Fact]
    public async Task A_held_namespace_lock_times_out_with_LockTimeout()
    {
        var rig = Make();
        using var held = await rig.Manager.OpenAsync(CancellationToken.None);
        var ex = await Assert.ThrowsAsync<NetfilterException>(() => rig.Manager.OpenAsync(CancellationToken.None));
        Assert.Equal("LockTimeout", ex.ErrorId);
        Assert.True(File.Exists(Path.Combine(_lockDir, "host.lock")));
    }

    [Fact]
    public async Task The_lock_is_released_with_the_session()
    {
        var rig = Make(ns: "psnfx-fake");
        using (await rig.Manager.OpenAsync(CancellationToken.None))
        {
            Assert.True(File.Exists(Path.Combine(_lockDir, "netns-psnfx-fake.lock")));
        }

        using var again = await rig.Manager.OpenAsync(CancellationToken.None);
        Assert.NotNull(again.Snapshot);
    }

    [Fact]
    public async Task Cancellation_before_commit_sends_nothing()
    {
        var rig = Make();
        var defs = await rig.Manager.ResolveAsync(new[] { Request(Defs.Simple("a", 9000)) }, CancellationToken.None);
        using var session = await rig.Manager.OpenAsync(CancellationToken.None);
        rig.Manager.PlanAdds(session, defs, false);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => rig.Manager.CommitAsync(session, cts.Token));
        Assert.Equal(0, rig.Runner.RestoreCount);
    }

    private Rig MakeWithKernel(string? v4 = null, string? v6 = null, string? ns = null)
    {
        var rig = Make(ns: ns);
        rig.Runner.Kernel4 = new FakeKernel(IpFamily.IPv4, v4);
        rig.Runner.Kernel6 = new FakeKernel(IpFamily.IPv6, v6);
        return rig;
    }

    [Fact]
    public async Task Create_read_repeat_and_remove_against_a_model_kernel()
    {
        var rig = MakeWithKernel(Golden.Read("nft", "foreign-only.v4.save"), Golden.Read("nft", "foreign-only.v6.save"));
        var before4 = rig.Runner.Kernel4!.Save();
        var before6 = rig.Runner.Kernel6!.Save();

        var created = await rig.NewAsync(false, Defs.Web, Defs.Dns, Defs.SshDirect, Defs.Web6);
        Assert.All(created, r => Assert.Equal(ChangeKind.Created, r.Kind));
        Assert.Equal(new[] { IpFamily.IPv4, IpFamily.IPv6 }, rig.Runner.Restores.Select(r => r.Family));
        Assert.Empty(rig.Observer.Failures);

        var read = await rig.Manager.GetAsync(CancellationToken.None);
        Assert.Equal(new[] { Defs.Dns, Defs.SshDirect, Defs.Web, Defs.Web6 }, read.Select(f => f.Definition));
        Assert.All(read, f => Assert.Equal("Complete", f.Status));

        var again = await rig.NewAsync(false, Defs.Web, Defs.Dns, Defs.SshDirect, Defs.Web6);
        Assert.All(again, r => Assert.Equal(ChangeKind.Unchanged, r.Kind));
        Assert.Equal(2, rig.Runner.RestoreCount);

        var removed = await rig.RemoveAsync(Pattern("*"));
        Assert.Equal(4, removed.Count);
        Assert.Equal(before4, rig.Runner.Kernel4.Save());
        Assert.Equal(before6, rig.Runner.Kernel6.Save());
    }

    [Fact]
    public async Task After_a_refusal_the_kernel_holds_exactly_the_others()
    {
        var rig = MakeWithKernel();
        rig.Runner.RestoreAnswer = (_, index, stdin) => index == 0 && stdin.Contains("psnf:v1:bad:", StringComparison.Ordinal)
            ? new ProcessResult(1, string.Empty, $"iptables-restore: line {Array.FindIndex(stdin.Split('\n'), l => l.Contains("psnf:v1:bad:", StringComparison.Ordinal)) + 1} failed\n")
            : new ProcessResult(0, string.Empty, string.Empty);

        await rig.NewAsync(false, Defs.Simple("a", 9000), Defs.Simple("bad", 9001), Defs.Simple("c", 20000));

        Assert.Equal(new[] { "a", "c" }, (await rig.Manager.GetAsync(CancellationToken.None)).Select(f => f.Name));
        Assert.Equal("bad", Assert.Single(rig.Observer.Failures).Target);
    }

    [Fact]
    public async Task A_stale_snapshot_position_is_refused_by_the_kernel_and_reported()
    {
        // Someone inserted a rule at the top of a module chain between our read and our write (without the lock).
        var rig = MakeWithKernel(Golden.Read("nft", "owned-only.v4.save"));
        using var session = await rig.Manager.OpenAsync(CancellationToken.None);
        rig.Runner.Kernel4!.Apply("*filter\n-D PSNF-FORWARD 3\n-D PSNF-FORWARD 2\nCOMMIT\n");
        rig.Manager.PlanRemoves(session, new[] { Literal("ssh.direct") });
        var ex = await Assert.ThrowsAsync<CommandFailedException>(() => rig.Manager.CommitAsync(session, CancellationToken.None));
        Assert.Equal("-D PSNF-FORWARD 3", ex.FailedInput);
        Assert.Equal("ssh.direct", ex.Target);
    }

    /// <summary>No forward is left half there: every forward read back is complete, and no dispatch chain is empty.</summary>
    /// <summary>The same tables with the same chains and rules (the model kernel lists tables in the order they were last committed).</summary>
    private static void AssertSameTables(string expected, string actual)
    {
        static IEnumerable<string> Sections(string save) =>
            save.Split('*', StringSplitOptions.RemoveEmptyEntries).OrderBy(t => t, StringComparer.Ordinal);
        Assert.Equal(Sections(expected), Sections(actual));
    }

    private static async Task AssertWholeOrAbsent(Rig rig)
    {
        var state = PSNetfilter.Core.Backends.Iptables.ForwardReader.Read(rig.Runner.Kernel4!.Parse(), null);
        Assert.Empty(state.Warnings);
        Assert.All(state.Forwards, f => Assert.Equal("Complete", f.Status));
        Assert.Empty(state.UntaggedRules);
        var rs = rig.Runner.Kernel4.Parse();
        foreach (var table in rs.Tables)
        {
            Assert.All(
                table.Chains.Where(c => PSNetfilter.Core.Backends.Iptables.RuleLayout.IsDispatchChain(c.Name)),
                c => Assert.True(table.Rules.Any(r => r.Chain == c.Name), $"empty dispatch chain {c.Name}"));
        }

        Assert.Equal(state.Forwards.Count, (await rig.Manager.GetAsync(CancellationToken.None)).Count);
    }

    [Fact]
    public async Task A_refusal_in_the_second_table_rolls_back_what_the_first_table_applied()
    {
        // iptables-restore commits nat before it reaches filter: the refused forward's nat rules (and its
        // neighbour's) are in the kernel when the error comes back.
        var rig = MakeWithKernel();
        rig.Runner.Kernel4!.PerTableCommit = true;
        rig.Runner.Kernel4.Refuse = line => line.Contains("psnf:v1:bad:fwd", StringComparison.Ordinal);

        var results = await rig.NewAsync(false, Defs.Simple("a", 9000), Defs.Simple("bad", 9001));

        Assert.Equal(new[] { ("a", ChangeKind.Created) }, results.Select(r => (r.Forward.Name, r.Kind)));
        var error = Assert.IsType<CommandFailedException>(Assert.Single(rig.Observer.Failures));
        Assert.Equal("bad", error.Target);
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("applied only part", StringComparison.Ordinal));
        Assert.Equal(new[] { "a" }, (await rig.Manager.GetAsync(CancellationToken.None)).Select(f => f.Name));
        Assert.DoesNotContain("psnf:v1:bad:", rig.Runner.Kernel4.Save());
        await AssertWholeOrAbsent(rig);
    }

    [Fact]
    public async Task A_refusal_in_the_first_table_needs_no_roll_back()
    {
        var rig = MakeWithKernel();
        rig.Runner.Kernel4!.PerTableCommit = true;
        rig.Runner.Kernel4.Refuse = line => line.Contains("psnf:v1:bad:dnat", StringComparison.Ordinal);

        var results = await rig.NewAsync(false, Defs.Simple("a", 9000), Defs.Simple("bad", 9001));

        Assert.Equal(new[] { "a" }, results.Select(r => r.Forward.Name));
        Assert.DoesNotContain(rig.Observer.Warnings, w => w.Contains("applied only part", StringComparison.Ordinal));
        Assert.Equal(2, rig.Runner.RestoreCount);
        await AssertWholeOrAbsent(rig);
    }

    private static PortForwardDefinition[] Many(int count, string? bad = null) =>
        Enumerable.Range(0, count).Select(i => Defs.Simple(i == count / 2 && bad is not null ? bad : $"f{i:D2}", 9000 + i)).ToArray();

    [Fact]
    public async Task A_large_payload_is_one_restore_per_table_run_at_once()
    {
        var rig = MakeWithKernel();

        var results = await rig.NewAsync(false, Many(40));

        Assert.Equal(40, results.Count);
        Assert.All(results, r => Assert.Equal(ChangeKind.Created, r.Kind));
        var payloads = rig.Runner.Restores.Select(r => r.Payload).ToList();
        Assert.Equal(2, payloads.Count);
        Assert.All(rig.Runner.Restores, r => Assert.Equal(IpFamily.IPv4, r.Family));
        var headers = payloads.Select(p => string.Join(",", p.Split('\n').Where(l => l.StartsWith('*')))).OrderBy(h => h, StringComparer.Ordinal);
        Assert.Equal(new[] { "*filter", "*nat" }, headers);
        Assert.True(payloads.Sum(p => p.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length) >= IptablesTools.ConcurrentTablesFromLines);
        Assert.Contains(rig.Log, l => l.Contains("applied as one process per table", StringComparison.Ordinal));
        Assert.Equal(40, (await rig.Manager.GetAsync(CancellationToken.None)).Count);
        await AssertWholeOrAbsent(rig);
    }

    [Fact]
    public async Task A_small_payload_stays_one_restore()
    {
        var rig = MakeWithKernel();

        await rig.NewAsync(false, Many(3));

        var (_, payload) = Assert.Single(rig.Runner.Restores);
        Assert.Contains("*nat", payload, StringComparison.Ordinal);
        Assert.Contains("*filter", payload, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fwd")]
    [InlineData("dnat")]
    public async Task A_refusal_in_one_table_of_a_split_payload_rolls_back_the_other(string role)
    {
        // With one process per table, the other table's process may have committed whichever table failed.
        var rig = MakeWithKernel();
        rig.Runner.Kernel4!.Refuse = line => line.Contains($"psnf:v1:bad:{role}", StringComparison.Ordinal);

        var results = await rig.NewAsync(false, Many(40, bad: "bad"));

        Assert.Equal(39, results.Count);
        Assert.DoesNotContain(results, r => r.Forward.Name == "bad");
        var error = Assert.IsType<CommandFailedException>(Assert.Single(rig.Observer.Failures));
        Assert.Equal("bad", error.Target);
        Assert.Contains($"psnf:v1:bad:{role}", error.FailedInput, StringComparison.Ordinal);
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("applied only part", StringComparison.Ordinal));
        Assert.Equal(39, (await rig.Manager.GetAsync(CancellationToken.None)).Count);
        Assert.DoesNotContain("psnf:v1:bad:", rig.Runner.Kernel4.Save());
        await AssertWholeOrAbsent(rig);
    }

    [Fact]
    public async Task A_refused_replacement_leaves_the_forward_whole_or_absent()
    {
        var rig = MakeWithKernel();
        await rig.NewAsync(false, Defs.Web, Defs.Dns);
        rig.Runner.Kernel4!.PerTableCommit = true;
        var newWeb = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.Masquerade, null, null);
        rig.Runner.Kernel4.Refuse = line => line.Contains("psnf:v1:web:fwd", StringComparison.Ordinal) && line.Contains("198.51.100.11", StringComparison.Ordinal);

        var results = await rig.NewAsync(true, newWeb);

        Assert.Empty(results);
        Assert.Equal("web", Assert.Single(rig.Observer.Failures).Target);
        var now = await rig.Manager.GetAsync(CancellationToken.None);
        Assert.Contains(now, f => f.Name == "dns" && f.Definition.Equals(Defs.Dns));
        Assert.DoesNotContain(now, f => f.Name == "web" && !f.Definition.Equals(Defs.Web));
        await AssertWholeOrAbsent(rig);
    }

    [Fact]
    public async Task A_streamed_change_writes_its_lines_before_the_commit_and_applies_what_one_payload_would()
    {
        var streamed = MakeWithKernel(Golden.Read("nft", "foreign-only.v4.save"));
        var planned = MakeWithKernel(Golden.Read("nft", "foreign-only.v4.save"));
        var defs = Many(200);
        string? before = null;

        var results = await streamed.StreamAsync(false, defs, _ =>
        {
            // The writer hands blocks to the processes in the background: wait (briefly) for the first.
            SpinWait.SpinUntil(
                () => (before = string.Concat(streamed.Runner.LiveInputs.Select(i => i.Text))).Contains("psnf:v1:f05:dnat", StringComparison.Ordinal),
                TimeSpan.FromSeconds(5));
        });
        await planned.NewAsync(false, defs);

        Assert.NotNull(results);
        Assert.Equal(200, results!.Count(r => r.Kind == ChangeKind.Created));
        Assert.Equal(2, streamed.Runner.LateStarts); // nat and filter, started when the change opened
        Assert.Contains("psnf:v1:f05:dnat", before, StringComparison.Ordinal); // handed over while forwards still came
        Assert.DoesNotContain("COMMIT", before, StringComparison.Ordinal); // but nothing committed before the end
        AssertSameTables(planned.Runner.Kernel4!.Save(), streamed.Runner.Kernel4!.Save());
        var sent = streamed.Runner.Restores.Select(r => r.Payload).OrderBy(p => p, StringComparer.Ordinal);
        var whole = planned.Runner.Restores.Select(r => r.Payload).OrderBy(p => p, StringComparer.Ordinal);
        Assert.Equal(whole, sent); // the same lines, in the same order, as the payload planned at once
        await AssertWholeOrAbsent(streamed);
    }

    [Fact]
    public async Task An_abandoned_stream_applies_nothing()
    {
        var rig = MakeWithKernel();
        var before = rig.Runner.Kernel4!.Save();
        var session = await rig.Manager.TryOpenStreamingAsync(Many(40), CancellationToken.None);
        Assert.NotNull(session);
        foreach (var def in Many(300))
        {
            rig.Manager.PlanAdds(session!, new[] { def }, force: false);
        }

        // Blocks reach the processes in the background: wait (briefly) until they hold some rules.
        Assert.True(SpinWait.SpinUntil(() => rig.Runner.LiveInputs.Any(i => i.Text.Contains("-A PSNF-", StringComparison.Ordinal)), TimeSpan.FromSeconds(5)));
        session!.Dispose(); // a stopped pipeline: the input ends without COMMIT

        Assert.Equal(before, rig.Runner.Kernel4.Save());
        Assert.All(rig.Runner.Restores, r => Assert.DoesNotContain("COMMIT", r.Payload, StringComparison.Ordinal));
        Assert.Contains(rig.Log, l => l.Contains("abandoned", StringComparison.Ordinal));
        using var again = NamespaceLock.TryAcquire(null, _lockDir); // and the lock is free
        Assert.NotNull(again);
    }

    [Fact]
    public async Task A_stream_is_not_opened_while_another_change_holds_the_lock()
    {
        var rig = MakeWithKernel();
        using (var held = NamespaceLock.TryAcquire(null, _lockDir))
        {
            Assert.NotNull(held);
            var started = DateTime.UtcNow;
            Assert.Null(await rig.StreamAsync(false, Many(40)));
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromMilliseconds(250), "it does not wait for the lock");
        }

        Assert.DoesNotContain(rig.Runner.Requests, r => FakeProcessRunner.Unwrap(r).Program == FakeProcessRunner.Restore4);
    }

    [Fact]
    public async Task A_stream_is_not_opened_with_the_legacy_backend()
    {
        var rig = MakeWithKernel();
        var legacy = new NetfilterHost(null, rig.Runner)
        {
            ChainLister = rig.Runner.ListChainsAsync,
            SkipSystemChecks = true,
            LockDirectory = _lockDir,
        };

        Assert.Null(await new PortForwardManager(legacy, rig.Observer, new IptablesNetfilterBackend(legacy, FakeProcessRunner.Backend with { Kind = IptablesBackendKind.Legacy })).TryOpenStreamingAsync(Many(40), CancellationToken.None));
        using var free = NamespaceLock.TryAcquire(null, _lockDir); // it took no lock
        Assert.NotNull(free);
    }

    [Theory]
    [InlineData("fwd")]
    [InlineData("dnat")]
    public async Task A_refusal_in_a_streamed_change_drops_that_forward_and_applies_the_rest(string role)
    {
        var rig = MakeWithKernel();
        rig.Runner.Kernel4!.Refuse = line => line.Contains($"psnf:v1:bad:{role}", StringComparison.Ordinal);

        var results = await rig.StreamAsync(false, Many(120, bad: "bad"));

        Assert.Equal(119, results!.Count);
        var error = Assert.IsType<CommandFailedException>(Assert.Single(rig.Observer.Failures));
        Assert.Equal("bad", error.Target);
        Assert.Contains($"psnf:v1:bad:{role}", error.FailedInput, StringComparison.Ordinal);
        Assert.Equal(119, (await rig.Manager.GetAsync(CancellationToken.None)).Count);
        Assert.DoesNotContain("psnf:v1:bad:", rig.Runner.Kernel4.Save());
        await AssertWholeOrAbsent(rig);
    }

    [Fact]
    public async Task A_streamed_change_replaces_with_force_like_one_payload()
    {
        var streamed = MakeWithKernel();
        var planned = MakeWithKernel();
        foreach (var rig in new[] { streamed, planned })
        {
            await rig.NewAsync(false, Many(60));
        }

        // Every other forward moves to another internal host; the rest are unchanged.
        var next = Many(60).Select((d, i) => i % 2 == 0 ? d : PortForwardDefinition.Create(d.Name, d.Protocol, d.ExternalAddress, d.ExternalPort, Defs.Ip("198.51.100.77"), d.InternalPort, d.SnatMode, d.SnatAddress, d.Description)).ToList();
        var results = await streamed.StreamAsync(true, next);
        await planned.NewAsync(true, next.ToArray());

        Assert.Equal(30, results!.Count(r => r.Kind == ChangeKind.Replaced));
        Assert.Equal(30, results!.Count(r => r.Kind == ChangeKind.Unchanged));
        AssertSameTables(planned.Runner.Kernel4!.Save(), streamed.Runner.Kernel4!.Save());
        await AssertWholeOrAbsent(streamed);
    }

    private static async Task<IReadOnlyList<ChangeResult>> AddReadingAsItWould(Rig rig, params PortForwardDefinition[] defs)
    {
        // As New-PortForward opens a change: it says what it adds, so a family it does not add to may go unread.
        using var session = await rig.Manager.OpenAsync(CancellationToken.None, readForwarding: true, adding: defs);
        rig.Manager.PlanAdds(session, defs, force: false);
        return await rig.Manager.CommitAsync(session, CancellationToken.None);
    }

    private static int Saves(Rig rig, string save) => rig.Runner.Requests.Count(r => FakeProcessRunner.Unwrap(r).Program == save);

    [Fact]
    public async Task An_add_to_one_family_reads_the_other_only_when_it_holds_module_chains()
    {
        var rig = MakeWithKernel();
        Assert.Equal(ChangeKind.Created, Assert.Single(await AddReadingAsItWould(rig, Defs.Web)).Kind);
        Assert.Equal(1, Saves(rig, FakeProcessRunner.Save4));
        Assert.Equal(0, Saves(rig, FakeProcessRunner.Save6)); // no ip6 module chain: ip6tables-save skipped
        Assert.Equal(new[] { IpFamily.IPv6 }, rig.Runner.ChainListings);
        Assert.Contains(rig.Log, l => l.Contains("no PSNF- chain, so ip6tables-nft-save is not needed", StringComparison.Ordinal));

        // With an IPv6 forward in place, the IPv6 rules are read, and a name taken there is still taken.
        await rig.NewAsync(false, Defs.Web6);
        var sameName = PortForwardDefinition.Create("web6", Protocol.Tcp, Defs.Ip("203.0.113.1"), 9443, Defs.Ip("198.51.100.10"), null, SnatMode.Masquerade, null, null);
        Assert.Empty(await AddReadingAsItWould(rig, sameName));
        Assert.Equal("PortForwardExists", Assert.Single(rig.Observer.Failures).ErrorId);
        Assert.Equal(2, Saves(rig, FakeProcessRunner.Save6)); // NewAsync read it, and now the add does too
    }

    [Fact]
    public async Task An_add_reads_every_family_when_the_chains_cannot_be_listed()
    {
        var rig = MakeWithKernel();
        var failing = new NetfilterHost(null, rig.Runner, m => rig.Log.Add(m))
        {
            SkipSystemChecks = true,
            LockDirectory = _lockDir,
            ProcReader = (_, path) => Task.FromResult(rig.Runner.ReadProcSys(path)),
            ChainLister = (_, _) => Task.FromException<IReadOnlyList<(string, string)>>(new NetfilterException("NftablesQueryFailed", FailureKind.OperationFailed, "Listing the nf_tables chains over netlink failed at the request (errno 93).")),
        };
        var manager = new PortForwardManager(failing, rig.Observer, new IptablesNetfilterBackend(failing, FakeProcessRunner.Backend));
        using (var session = await manager.OpenAsync(CancellationToken.None, readForwarding: true, adding: new[] { Defs.Web }))
        {
            manager.PlanAdds(session, new[] { Defs.Web }, false);
            await manager.CommitAsync(session, CancellationToken.None);
        }

        Assert.Equal(1, Saves(rig, FakeProcessRunner.Save6));
        Assert.Contains(rig.Log, l => l.Contains("Reading the IPv6 rules with ip6tables-nft-save instead", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Removing_everything_keeps_a_module_chain_another_program_jumps_to()
    {
        var rig = MakeWithKernel();
        await rig.NewAsync(false, Defs.Web);
        rig.Runner.Kernel4!.Apply("*filter\n:MY-CHAIN - [0:0]\n-A MY-CHAIN -j PSNF-FORWARD\nCOMMIT\n");

        var removed = await rig.RemoveAsync(Pattern("*"));

        Assert.Equal("web", Assert.Single(removed).Forward.Name);
        Assert.Contains("PSNF-FORWARD", rig.Runner.Kernel4.ModuleChains());
        Assert.DoesNotContain(rig.Runner.Kernel4.ModuleChains(), c => c.StartsWith("PSNF-PRE", StringComparison.Ordinal));
        Assert.Contains("-A MY-CHAIN -j PSNF-FORWARD", rig.Runner.Kernel4.Save());
        Assert.Empty(await rig.Manager.GetAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_refused_cross_family_replace_keeps_the_old_forward()
    {
        var rig = MakeWithKernel();
        await rig.NewAsync(false, Defs.Web);
        var web6 = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("2001:db8:1::1"), 8080, Defs.Ip("2001:db8:2::10"), 80, SnatMode.Snat, Defs.Ip("2001:db8:2::1"), null);
        rig.Runner.RestoreAnswer = (family, _, stdin) => family == IpFamily.IPv6
            ? new ProcessResult(2, string.Empty, $"ip6tables-restore: line {Array.FindIndex(stdin.Split('\n'), l => l.Contains("psnf:v1:web:", StringComparison.Ordinal)) + 1} failed\n")
            : new ProcessResult(0, string.Empty, string.Empty);

        var results = await rig.NewAsync(true, web6);

        Assert.Empty(results);
        Assert.Single(rig.Observer.Failures);
        // The replacement failed, so the old forward must still be there (today: deleted, and not reported).
        Assert.Equal(Defs.Web, Assert.Single(await rig.Manager.GetAsync(CancellationToken.None)).Definition);
    }

    [Fact]
    public async Task New_works_when_a_name_exists_in_both_families()
    {
        // Reachable after a cross-family replace whose second family failed, or from hand-restored rules.
        var v4 = SaveText.Wrap(PSNetfilter.Core.Backends.Iptables.RuleLayout.Render(Defs.Simple("dup", 9000)));
        var v6 = SaveText.Wrap(PSNetfilter.Core.Backends.Iptables.RuleLayout.Render(Defs.Simple("dup", 9000, internalAddress: "2001:db8:2::30")));
        var rig = Make(v4, v6);
        Assert.Equal(2, (await rig.Manager.GetAsync(CancellationToken.None)).Count);

        var results = await rig.NewAsync(false, Defs.Simple("other", 9001));
        Assert.Equal(ChangeKind.Created, Assert.Single(results).Kind);
    }

    private static PSNetfilter.Core.Backends.Iptables.RestorePayload ToPayload(string text)
    {
        var p = new PSNetfilter.Core.Backends.Iptables.RestorePayload(IpFamily.IPv4);
        var table = string.Empty;
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('*'))
            {
                table = line[1..];
            }
            else if (line != "COMMIT")
            {
                p.Add(table, line);
            }
        }

        return p;
    }
}
