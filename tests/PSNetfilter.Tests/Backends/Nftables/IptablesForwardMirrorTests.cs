using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Backends.Nftables;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// The nftables backend's FORWARD accepts in iptables' filter table (tag nftfwd): laid out as the iptables
/// backend's FORWARD part, never read as an iptables forward, planned beside iptables forwards without breaking
/// either, and written only where FORWARD drops.
/// </summary>
public class IptablesForwardMirrorTests
{
    private static RestorePayload PlanMirror(FakeKernel kernel, PortForwardDefinition? add = null, string? remove = null)
    {
        var rs = kernel.Parse();
        var builder = new ChangePlanBuilder(rs, ForwardReader.Read(rs, null));
        if (remove is not null)
        {
            builder.RemoveMirror(remove);
        }

        if (add is not null)
        {
            builder.AddMirror(add);
        }

        var payload = builder.Finish();
        ChangePlannerTests.AssertOnlyTouchesModuleChains(payload);
        if (!payload.IsEmpty)
        {
            kernel.Apply(payload.Text);
        }

        return payload;
    }

    [Fact]
    public void The_accept_is_the_iptables_forward_accept_with_its_own_tag_in_the_same_chains()
    {
        var own = RuleLayout.Render(Defs.Web).Single(r => r.Role == ForwardPart.Forward);
        var mirror = RuleLayout.RenderForwardMirror(Defs.Web);
        Assert.Equal(own.Chain, mirror.Chain);
        Assert.Equal(own.Path, mirror.Path);
        Assert.Equal(own.Spec.Replace(":web:fwd", ":web:nftfwd", StringComparison.Ordinal), mirror.Spec);
    }

    [Fact]
    public void The_iptables_reader_keeps_the_accepts_apart_from_its_forwards()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        var lines = PlanMirror(kernel, Defs.Web).Text;
        Assert.Contains("-I FORWARD 1 -j PSNF-FORWARD", lines);

        var state = ForwardReader.Read(kernel.Parse(), null);
        Assert.Empty(state.Forwards);
        Assert.Empty(state.Warnings);
        Assert.Equal(new[] { "web" }, state.MirrorsOf.Keys);
        Assert.Empty(state.UnreachableMirrors);
    }

    [Fact]
    public void An_iptables_forward_and_an_accept_share_the_chains_and_removing_either_keeps_the_other()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanMirror(kernel, Defs.Web);
        var rs = kernel.Parse();
        kernel.Apply(ChangePlanner.Plan(rs, ForwardReader.Read(rs, null), new[] { Defs.Web }, Array.Empty<PortForward>()).Text);
        var both = ForwardReader.Read(kernel.Parse(), null);
        Assert.Equal("web", Assert.Single(both.Forwards).Name);
        Assert.True(both.Forwards[0].IsComplete);
        Assert.Single(both.MirrorsOf["web"]);

        // The iptables forward goes: the accept stays, and so do the chains it sits in (no -X of a chain that holds it).
        rs = kernel.Parse();
        kernel.Apply(ChangePlanner.Plan(rs, both, Array.Empty<PortForwardDefinition>(), both.Forwards).Text);
        var left = ForwardReader.Read(kernel.Parse(), null);
        Assert.Empty(left.Forwards);
        Assert.Single(left.MirrorsOf["web"]);
        Assert.Empty(left.UnreachableMirrors);

        // The last accept goes: nothing of the module is left.
        PlanMirror(kernel, remove: "web");
        Assert.DoesNotContain("PSNF", kernel.Save(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_deleted_jump_makes_the_accept_unreachable()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanMirror(kernel, Defs.Web);
        kernel.Apply("*filter\n-D FORWARD -j PSNF-FORWARD\nCOMMIT\n");
        Assert.Equal(new[] { "web" }, ForwardReader.Read(kernel.Parse(), null).UnreachableMirrors);
    }

    [Theory]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", null)]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "its policy is DROP")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n-A FORWARD -j X\n-A X -o eth9 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n", "rule -A X -o eth9 -j REJECT --reject-with icmp-port-unreachable")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n", null)]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n", null)]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -i eth0 -m conntrack --ctstate DNAT -j ACCEPT\nCOMMIT\n", "its policy is DROP")]
    public void FORWARD_drops_by_policy_or_a_reachable_rule_unless_it_accepts_DNATed_connections_first(string save, string? expected)
    {
        Assert.Equal(expected, IptablesForwardMirror.DropOf(IptablesSaveParser.Parse(save, IpFamily.IPv4)));
    }
}
