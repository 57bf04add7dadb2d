using System.Net;
using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.NftJson;
using Xunit;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// iptables' own FORWARD chain (here Docker's, policy drop, through iptables-nft) drops what the nftables backend's
/// table accepts: every base chain on the forward hook sees the packet. The iptables backend checks that chain itself
/// (its jump and accept rule: ForwardPolicyDrop); for a forward of the nftables backend nothing else would, so the
/// ForeignTableDrop check reads iptables' tables for it. The dump is the Docker fixture (tests/fixtures/foreign)
/// loaded with iptables-nft-restore and listed by the real nft (Golden/nftjson/iptables-docker.json).
/// </summary>
public class NftablesIptablesDropTests
{
    private static readonly NftRuleset Docker =
        NftJsonParser.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", "nftjson", "iptables-docker.json")));

    private static PortForward Forward(string backend, string? external = "203.0.113.1") =>
        new(PortForwardDefinition.Create("web", Protocol.Tcp, external is null ? null : IPAddress.Parse(external), 8080, IPAddress.Parse("198.51.100.10"), 80,
            SnatMode.Masquerade, null, null, null))
        { Backend = backend };

    private static List<PortForwardFinding> Check(PortForward f) => ForeignTableCheck.Evaluate(f, Docker, "gwi", "gwx").ToList();

    [Fact]
    public void Dockers_forward_policy_drop_is_an_error_for_a_forward_of_the_nftables_backend_with_an_iptables_fix()
    {
        var x = Assert.Single(Check(Forward(BackendCatalog.Nftables)));

        Assert.Equal((FindingSeverity.Error, ForeignTableCheck.CheckName, "ip filter", "FORWARD"), (x.Severity, x.Check, x.Table, x.Chain));
        Assert.Contains("by its policy drop", x.What, StringComparison.Ordinal);
        Assert.Equal(ForeignTableCheck.IptablesOwner, x.Owner);
        Assert.StartsWith("iptables -I FORWARD -m conntrack --ctstate DNAT --ctproto tcp --ctorigdst 203.0.113.1 --ctorigdstport 8080 --ctreplsrc 198.51.100.10 --ctreplsrcport 80 -j ACCEPT", x.Fix, StringComparison.Ordinal);
        Assert.Contains("DOCKER-USER", x.Fix, StringComparison.Ordinal);
        Assert.Contains("-Backend Iptables", x.Fix, StringComparison.Ordinal);
        Assert.False(ForeignTableCheck.CanOpen(x), "-AcceptInOtherTables never writes into iptables' tables");
    }

    [Fact]
    public void The_iptables_fix_of_an_ipv6_forward_on_any_local_address_uses_ip6tables_without_an_original_destination()
    {
        var f = new PortForward(PortForwardDefinition.Create("web6", Protocol.Udp, null, 5353, IPAddress.Parse("2001:db8:2::10"), 53,
            SnatMode.Masquerade, null, null, null)) { Backend = BackendCatalog.Nftables };

        Assert.Equal(
            "ip6tables -I FORWARD -m conntrack --ctstate DNAT --ctproto udp --ctorigdstport 5353 --ctreplsrc 2001:db8:2::10 --ctreplsrcport 53 -j ACCEPT",
            ForeignTableCheck.IptablesAcceptCommand(f, "FORWARD"));
    }

    [Fact]
    public void A_forward_of_the_iptables_backend_is_not_checked_against_iptables_tables_here()
    {
        // Its own check (ForwardPolicyDrop, ForwardJumpNotFirst) reads them through iptables-save.
        Assert.Empty(Check(Forward(BackendCatalog.Iptables)));
        Assert.Empty(Check(Forward(null!)));
    }

    [Fact]
    public void The_table_is_read_for_the_nftables_backend_only()
    {
        var filter = Docker.Tables.Single(t => t.Display == "ip filter");

        Assert.True(ForeignTableCheck.Reads(Forward(BackendCatalog.Nftables), Docker, filter));
        Assert.False(ForeignTableCheck.Reads(Forward(BackendCatalog.Iptables), Docker, filter));
    }
}
