using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Diagnostics;
using Xunit;

namespace PSNetfilter.Tests;

/// <summary>The record of what PSNetfilter created per namespace (/run/psnetfilter/intent), and the repair command of a missing forward.</summary>
public sealed class IntentRecordTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("psnf-intent-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathFor(string? ns) => IntentRecord.PathFor(_dir, ns);

    private static PortForward Full() => new(PortForwardDefinition.Create("web", Protocol.Udp, IPAddress.Parse("203.0.113.1"), 9000, IPAddress.Parse("198.51.100.10"), 7000, SnatMode.Snat, IPAddress.Parse("198.51.100.1"), "it's ü",
        new ForwardExtras(ExternalPortEnd: 9002, InternalPortEnd: 7002, SourceAddresses: new[] { IPNetwork.Parse("192.0.2.0/24"), IPNetwork.Parse("198.51.100.7/32") }, InInterface: "eth0", IncludeLocal: true)));

    [Fact]
    public void A_forward_comes_back_from_the_record_with_its_whole_definition()
    {
        var f = Full();
        IntentRecord.Update(PathFor("ns1"), "net:[1]", new[] { new ChangeResult(f, ChangeKind.Created) });

        var back = Assert.Single(IntentRecord.Read(PathFor("ns1"), "net:[1]"));

        Assert.True(back.Equals(f.Definition), string.Join("; ", back.Differences(f.Definition)));
        Assert.Equal(PathFor("ns1"), Path.Combine(_dir, "intent", "netns-ns1.json"));
        Assert.Equal(Path.Combine(_dir, "intent", "host.json"), PathFor(null));
    }

    [Fact]
    public void Removed_forwards_leave_the_record_and_names_match_without_case()
    {
        var path = PathFor(null);
        var web = Full();
        var other = new PortForward(PortForwardDefinition.Create("Other", Protocol.Tcp, null, 80, IPAddress.Parse("198.51.100.10"), null, SnatMode.Masquerade, null, null));
        IntentRecord.Update(path, "net:[1]", new[] { new ChangeResult(web, ChangeKind.Created), new ChangeResult(other, ChangeKind.Created) });
        var removedWeb = new PortForward(PortForwardDefinition.Create("WEB", Protocol.Tcp, null, 81, IPAddress.Parse("198.51.100.10"), null, SnatMode.Masquerade, null, null));
        IntentRecord.Update(path, "net:[1]", new[] { new ChangeResult(removedWeb, ChangeKind.Removed) });

        Assert.Equal(new[] { "Other" }, IntentRecord.Read(path, "net:[1]").Select(d => d.Name));
    }

    [Fact]
    public void A_record_of_another_incarnation_of_the_namespace_or_an_unreadable_one_says_nothing()
    {
        var path = PathFor("ns1");
        IntentRecord.Update(path, "net:[1]", new[] { new ChangeResult(Full(), ChangeKind.Created) });
        Assert.Empty(IntentRecord.Read(path, "net:[2]"));

        File.WriteAllText(path, "{ not json");
        Assert.Empty(IntentRecord.Read(path, "net:[1]"));
        Assert.Empty(IntentRecord.Read(PathFor("absent"), "net:[1]"));

        // and the next change writes a good record over the unreadable one
        IntentRecord.Update(path, "net:[1]", new[] { new ChangeResult(Full(), ChangeKind.Created) });
        Assert.Single(IntentRecord.Read(path, "net:[1]"));
    }

    [Fact]
    public void The_repair_command_spells_out_the_whole_forward_in_PowerShell_quoting()
    {
        var f = new PortForward(Full().Definition) { NetworkNamespace = "gw1" };

        Assert.Equal(
            "New-PortForward -Name 'web' -Protocol Udp -ExternalAddress 203.0.113.1 -ExternalPort 9000-9002 -InternalAddress 198.51.100.10 -InternalPort 7000-7002 -SnatAddress 198.51.100.1 -SourceAddress 192.0.2.0/24,198.51.100.7/32 -InInterface 'eth0' -IncludeLocal -Description 'it''s ü' -NetworkNamespace 'gw1'",
            MissingForwardCheck.Repair(f));
        var finding = MissingForwardCheck.Recorded(f, "/run/psnetfilter/intent/netns-gw1.json");
        Assert.Equal(("Missing", FindingSeverity.Error), (finding.Check, finding.Severity));
        Assert.Contains("recorded in /run/psnetfilter/intent/netns-gw1.json", finding.What, StringComparison.Ordinal);
    }
}
