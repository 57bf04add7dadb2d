using System.Net;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Tests;

/// <summary>What the reader makes of forwards whose rules or jumps were deleted by hand.</summary>
public class DriftTests
{
    private static readonly PortForwardDefinition Guarded = PortForwardDefinition.Create(
        "guarded", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8601, Defs.Ip("198.51.100.10"), null, SnatMode.Masquerade, null, "only the lab",
        new ForwardExtras(SourceAddresses: new[] { new IPNetwork(Defs.Ip("198.51.100.0"), 24), new IPNetwork(Defs.Ip("192.0.2.0"), 24) }));

    private static PortForward Read(string save) =>
        Assert.Single(ForwardReader.Read(IptablesSaveParser.Parse(save, IpFamily.IPv4), null).Forwards);

    private static string Without(string save, Func<string, bool> drop) =>
        string.Join('\n', save.Split('\n').Where(l => !drop(l)));

    [Fact]
    public void Flags_round_trip()
    {
        Assert.Equal("DS2", ForwardTag.Flags(Guarded));
        Assert.Equal((false, true, true, 2), ForwardTag.ParseFlags("IDS2"));
        Assert.Equal((true, false, false, 0), ForwardTag.ParseFlags("L"));
        Assert.Null(ForwardTag.ParseFlags("S0"));
        Assert.Null(ForwardTag.ParseFlags("X"));
        Assert.Equal(string.Empty, ForwardTag.Flags(Defs.Web));
    }

    [Fact]
    public void A_complete_forward_with_an_allow_list_reads_back_whole()
    {
        var f = Read(SaveText.Wrap(RuleLayout.Render(Guarded), normalize: true));
        Assert.True(f.IsComplete);
        Assert.False(f.DefinitionPartial);
        Assert.Equal(Guarded, f.Definition);
    }

    [Fact]
    public void Losing_one_dnat_rule_of_an_allow_list_is_missing_dnat_and_partial()
    {
        var save = Without(SaveText.Wrap(RuleLayout.Render(Guarded), normalize: true), l => l.Contains("-s 192.0.2.0/24", StringComparison.Ordinal));
        var f = Read(save);
        Assert.Equal(new[] { ForwardPart.Dnat }, f.MissingRules);
        Assert.True(f.DefinitionPartial);
        Assert.StartsWith("Incomplete: missing Dnat", f.Status, StringComparison.Ordinal);
    }

    [Fact]
    public void Losing_every_dnat_rule_of_a_plain_forward_is_repairable()
    {
        var save = Without(SaveText.Wrap(RuleLayout.Render(Defs.Web), normalize: true), l => l.Contains(":dnat:", StringComparison.Ordinal));
        var f = Read(save);
        Assert.Equal(new[] { ForwardPart.Dnat }, f.MissingRules);
        Assert.False(f.DefinitionPartial);
        Assert.Equal("Incomplete: missing Dnat", f.Status);
    }

    [Fact]
    public void A_deleted_hook_jump_makes_the_rules_below_it_unreachable()
    {
        var save = Without(SaveText.Wrap(RuleLayout.Render(Defs.Web), normalize: true), l => l.Contains("-A PREROUTING -j PSNF-PREROUTING", StringComparison.Ordinal));
        var f = Read(save);
        Assert.False(f.IsComplete);
        Assert.Equal(new[] { ForwardPart.Dnat }, f.UnreachableRules);
        Assert.Contains("unreachable Dnat", f.Status, StringComparison.Ordinal);
    }

    [Fact]
    public void A_deleted_dispatch_jump_makes_its_subtree_unreachable()
    {
        var leaf = RuleLayout.Render(Defs.Web).Single(r => r.Role == ForwardPart.Forward).Chain;
        var save = Without(SaveText.Wrap(RuleLayout.Render(Defs.Web), normalize: true), l => l.EndsWith("-j " + leaf, StringComparison.Ordinal));
        var f = Read(save);
        Assert.Equal(new[] { ForwardPart.Forward }, f.UnreachableRules);
    }

    private static readonly PortForwardDefinition Hairpinned = PortForwardDefinition.Create(
        "hp", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8302, Defs.Ip("198.51.100.10"), 7000, SnatMode.None, null, null,
        new ForwardExtras(IncludeLocal: true, HairpinNetwork: new IPNetwork(Defs.Ip("198.51.100.0"), 24)));

    [Fact]
    public void A_nosnat_local_forward_has_a_hairpin_rule_that_reads_back()
    {
        var rules = RuleLayout.Render(Hairpinned);
        var hairpin = Assert.Single(rules, r => r.Role == ForwardPart.Hairpin);
        Assert.StartsWith("-s 198.51.100.0/24 -d 198.51.100.10/32 -p tcp", hairpin.Spec, StringComparison.Ordinal);
        Assert.EndsWith("--comment psnf:v1:hp:hairpin:LH -j MASQUERADE", hairpin.Spec, StringComparison.Ordinal);
        Assert.DoesNotContain(rules, r => r.Role == ForwardPart.Snat);
        var f = Read(SaveText.Wrap(rules, normalize: true));
        Assert.True(f.IsComplete);
        Assert.Equal(Hairpinned, f.Definition);
    }

    [Fact]
    public void A_missing_hairpin_rule_is_drift()
    {
        var save = Without(SaveText.Wrap(RuleLayout.Render(Hairpinned), normalize: true), l => l.Contains(":hairpin:", StringComparison.Ordinal));
        Assert.Equal(new[] { ForwardPart.Hairpin }, Read(save).MissingRules);
    }

    [Fact]
    public void A_hairpin_network_needs_nosnat_and_include_local()
    {
        var ex = Assert.Throws<PortForwardValidationException>(() => PortForwardDefinition.Create(
            "hp", Protocol.Tcp, null, 8302, Defs.Ip("198.51.100.10"), null, SnatMode.Masquerade, null, null,
            new ForwardExtras(IncludeLocal: true, HairpinNetwork: new IPNetwork(Defs.Ip("198.51.100.0"), 24))));
        Assert.Equal("HairpinNetworkConflict", ex.ErrorId);
    }
}
