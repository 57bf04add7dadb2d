using System.Net;

namespace PSNetfilter.Tests.Support;

/// <summary>The forwards of tests/fixtures/owned/*.rules (and so of the golden owned*.save dumps).</summary>
internal static class Defs
{
    public static IPAddress Ip(string s) => IPAddress.Parse(s);

    public static PortForwardDefinition Web => PortForwardDefinition.Create(
        "web", Protocol.Tcp, Ip("203.0.113.1"), 8080, Ip("198.51.100.10"), 8080, SnatMode.Snat, Ip("198.51.100.1"), null);

    public static PortForwardDefinition Dns => PortForwardDefinition.Create(
        "dns", Protocol.Udp, null, 5353, Ip("198.51.100.10"), 53, SnatMode.Masquerade, null, "local dns");

    public static PortForwardDefinition SshDirect => PortForwardDefinition.Create(
        "ssh.direct", Protocol.Tcp, Ip("203.0.113.1"), 2222, Ip("198.51.100.20"), 22, SnatMode.None, null, null);

    public static PortForwardDefinition Web6 => PortForwardDefinition.Create(
        "web6", Protocol.Tcp, Ip("2001:db8:1::1"), 8080, Ip("2001:db8:2::10"), 80, SnatMode.Snat, Ip("2001:db8:2::1"), null);

    /// <summary>A simple forward with its own name and external port.</summary>
    public static PortForwardDefinition Simple(string name, int externalPort, SnatMode mode = SnatMode.Masquerade, string internalAddress = "198.51.100.30", Protocol protocol = Protocol.Tcp) =>
        PortForwardDefinition.Create(name, protocol, null, externalPort, Ip(internalAddress), null, mode, mode == SnatMode.Snat ? Ip(internalAddress.Contains(':') ? "2001:db8:2::1" : "198.51.100.1") : null, null);
}
