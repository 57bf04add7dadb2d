using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>The iptables backend through the engine against the model kernel: refusals, rollbacks and one process per table.</summary>
public sealed partial class PortForwardManagerTests
{
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
}
