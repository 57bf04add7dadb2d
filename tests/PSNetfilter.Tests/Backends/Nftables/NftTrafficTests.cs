using System.Net;
using System.Net.Sockets;
using PSNetfilter.Core.Backends.Nftables;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// Real TCP connections through the table: a client, a gateway and a server namespace (psnfT-*) joined by veth
/// pairs, client 192.0.2.2 -> gateway 192.0.2.1 | 198.51.100.1 -> server 198.51.100.10, which listens on port 80.
/// </summary>
public sealed class NftTrafficTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    private static PortForwardDefinition Plain => PortForwardDefinition.Create("web", Protocol.Tcp, NftDefs.Ip("192.0.2.1"), 8080, NftDefs.Ip("198.51.100.10"), 80, SnatMode.Masquerade, null, null);

    private static PortForwardDefinition Allowed => PortForwardDefinition.Create("allowed", Protocol.Tcp, NftDefs.Ip("192.0.2.1"), 8081, NftDefs.Ip("198.51.100.10"), 80, SnatMode.Snat, NftDefs.Ip("198.51.100.1"), null,
        new ForwardExtras(SourceAddresses: new[] { NftDefs.Net("192.0.2.0/28") }, InInterface: "psnfTg+"));

    private static PortForwardDefinition Refused => PortForwardDefinition.Create("refused", Protocol.Tcp, NftDefs.Ip("192.0.2.1"), 8082, NftDefs.Ip("198.51.100.10"), 80, SnatMode.Masquerade, null, null,
        new ForwardExtras(SourceAddresses: new[] { NftDefs.Net("192.0.2.99") }));

    [RootFact]
    public async Task Connections_pass_the_forwards_and_a_foreign_drop_still_drops_them()
    {
        using var client = new NftTestNamespace();
        using var gateway = new NftTestNamespace();
        using var server = new NftTestNamespace();
        Link(client, "psnfTc0", "192.0.2.2/24", gateway, "psnfTg0", "192.0.2.1/24");
        Link(server, "psnfTs0", "198.51.100.10/24", gateway, "psnfTg1", "198.51.100.1/24");
        client.Exec("ip", "route", "add", "default", "via", "192.0.2.1");
        server.Exec("ip", "route", "add", "default", "via", "198.51.100.1");
        gateway.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        using var listener = await Listen(server, new IPEndPoint(IPAddress.Parse("198.51.100.10"), 80));
        var viaGateway = (int port) => NamespaceThread.CanConnectAsync(client.Name, new IPEndPoint(IPAddress.Parse("192.0.2.1"), port), Timeout);

        // Without the table nothing answers on the gateway's ports.
        Assert.False(await viaGateway(8080));

        var foreign = gateway.ForeignRuleset();
        gateway.Nft(NftChangeScript.Render(NftTableState.Empty, new[] { Plain, Allowed, Refused }, Array.Empty<NftTableForward>()));
        Assert.Equal(foreign, gateway.ForeignRuleset());
        Assert.True(await viaGateway(8080), "the plain (map) forward");
        Assert.True(await viaGateway(8081), "the allow-listed forward, from an allowed source and interface");
        Assert.False(await viaGateway(8082), "the allow-listed forward, from a source it does not allow");

        var state = NftTableReader.Read(gateway.ListTableJson());
        var web = state.Forwards.Single(f => f.Name == "web");
        Assert.True(web.Packets >= 3, $"the accept element counts the forwarded packets ({web.Packets})");
        Assert.Equal(0, state.Forwards.Single(f => f.Name == "refused").Packets);

        // The boot set started over the same live forwards: same table, same counters, connections still pass.
        var before = gateway.ListTable();
        using (var folder = new BootSetFolder())
        {
            gateway.Exec("sh", folder.Write(BootSetFolder.Nft(Plain, Allowed, Refused)), "start");
        }

        Assert.Equal(before, gateway.ListTable());
        Assert.Equal(foreign, gateway.ForeignRuleset());

        // Another table's drop at the forward hook still drops: an accept ends only our table.
        gateway.Nft("table inet other {\n\tchain f {\n\t\ttype filter hook forward priority 0; policy drop;\n\t}\n}\n");
        var withOther = gateway.ForeignRuleset();
        Assert.False(await viaGateway(8080), "a policy-drop forward chain in table inet other drops the forward");
        Assert.False(await viaGateway(8081));

        // A change with the other table in place leaves it byte-identical; removing it lets the traffic through again.
        state = NftTableReader.Read(gateway.ListTableJson());
        gateway.Nft(NftChangeScript.Render(state, Array.Empty<PortForwardDefinition>(), state.Forwards.Where(f => f.Name == "refused")));
        Assert.Equal(withOther, gateway.ForeignRuleset());
        gateway.Nft("delete table inet other\n");
        Assert.True(await viaGateway(8080));
        Assert.Equal(new[] { "allowed", "web" }, NftTableReader.Read(gateway.ListTableJson()).Forwards.Select(f => f.Name));
    }

    private static void Link(NftTestNamespace a, string aName, string aAddr, NftTestNamespace b, string bName, string bAddr)
    {
        a.Exec("ip", "link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name);
        a.Exec("ip", "addr", "add", aAddr, "dev", aName);
        b.Exec("ip", "addr", "add", bAddr, "dev", bName);
        a.Exec("ip", "link", "set", aName, "up");
        b.Exec("ip", "link", "set", bName, "up");
        a.Exec("ip", "link", "set", "lo", "up");
        b.Exec("ip", "link", "set", "lo", "up");
    }

    /// <summary>A listening socket bound inside <paramref name="ns"/> (made on a thread that entered it; the socket stays there).</summary>
    private static Task<Socket> Listen(NftTestNamespace ns, IPEndPoint at) =>
        NamespaceThread.RunAsync(ns.Name, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(at);
            s.Listen(64);
            return s;
        });
}
