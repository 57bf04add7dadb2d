using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>The iptables backend through the engine: removals, and the conntrack entries of removed or replaced forwards.</summary>
public sealed partial class PortForwardManagerTests
{
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
}
