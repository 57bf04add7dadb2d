namespace PSNetfilter;

/// <summary>The lower-case name of a protocol as the netfilter tools and conntrack write it.</summary>
public static class ProtocolName
{
    public static string Of(Protocol p) => p == Protocol.Tcp ? "tcp" : "udp";
}
