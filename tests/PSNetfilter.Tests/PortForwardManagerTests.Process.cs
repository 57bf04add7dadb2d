using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>The iptables backend through the engine: processes, -WhatIf, forwarding, namespaces, reads, the lock and cancellation.</summary>
public sealed partial class PortForwardManagerTests
{
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
    public async Task Get_reads_no_family_that_holds_no_module_chains()
    {
        var rig = Make(OwnedOnly); // IPv4 holds module chains, IPv6 nothing
        Assert.NotEmpty(await rig.Manager.GetAsync(CancellationToken.None));
        Assert.Equal(1, rig.Runner.Requests.Count(r => FakeProcessRunner.Unwrap(r).Program == FakeProcessRunner.Save4));
        Assert.Equal(0, rig.Runner.Requests.Count(r => FakeProcessRunner.Unwrap(r).Program == FakeProcessRunner.Save6));
    }

    [Fact]
    public async Task A_failing_save_is_a_CommandFailedException()
    {
        var rig = Make(OwnedOnly); // a family with module chains is read with iptables-save (one without is not)
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
}
