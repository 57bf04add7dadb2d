using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>The iptables backend through the engine: streamed changes, families read only when needed, cross-family changes.</summary>
public sealed partial class PortForwardManagerTests
{
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
            Kernel = rig.Runner,
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
        rig.Runner.ChainListError = new NetfilterException("NftablesQueryFailed", FailureKind.OperationFailed, "Listing the nf_tables chains over netlink failed at the request (errno 93).");
        var manager = rig.Manager;
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
