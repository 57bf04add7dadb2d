using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>The iptables backend through the engine: resolving requests (SNAT sources from routes, checks against the gateway).</summary>
public sealed partial class PortForwardManagerTests
{
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
    public async Task The_gateway_interfaces_are_read_while_the_change_opens_and_warned_about_before_planning()
    {
        // New-PortForward without a stream: the definitions are made without waiting for `ip -j addr show`, the
        // namespace lock and the read of the rules run while it runs, and its warnings come before PlanAdds asks.
        var rig = Make();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Runner.AddrGate = gate.Task;
        var request = new PortForwardRequest("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), null, SnatMode.Snat, Defs.Ip("198.51.100.1"), null);

        var defs = await rig.Manager.ResolveUncheckedAsync(new[] { request }, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Defs.Web, Assert.Single(defs));
        using var session = await rig.Manager.OpenAsync(CancellationToken.None, readForwarding: true, adding: defs).WaitAsync(TimeSpan.FromSeconds(10));
        var programs = rig.Runner.Requests.Select(r => Path.GetFileName(FakeProcessRunner.Unwrap(r).Program)).ToList();
        Assert.Contains("ip", programs);
        Assert.Contains(Path.GetFileName(FakeProcessRunner.Save4), programs); // read while ip addr show is still running
        Assert.Empty(rig.Observer.Warnings);

        var check = rig.Manager.CheckResolvedAsync(defs, CancellationToken.None);
        Assert.False(check.IsCompleted);
        gate.SetResult();
        await check.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("ExternalAddressNotLocal", StringComparison.Ordinal));

        rig.Manager.PlanAdds(session, defs, force: false);
        var results = await rig.Manager.CommitAsync(session, CancellationToken.None);
        Assert.Equal(ChangeKind.Created, Assert.Single(results).Kind);
    }

    [Fact]
    public async Task ResolveAsync_still_waits_for_the_gateway_interfaces_and_warns()
    {
        var rig = Make();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        rig.Runner.AddrGate = gate.Task;
        var request = new PortForwardRequest("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), null, SnatMode.Snat, Defs.Ip("198.51.100.1"), null);

        var resolving = rig.Manager.ResolveAsync(new[] { request }, CancellationToken.None);
        Assert.False(resolving.IsCompleted);
        gate.SetResult();
        Assert.Single(await resolving.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains(rig.Observer.Warnings, w => w.Contains("ExternalAddressNotLocal", StringComparison.Ordinal));
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
}
