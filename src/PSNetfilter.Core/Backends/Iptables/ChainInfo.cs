namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>A chain line of iptables-save: <c>:NAME POLICY [packets:bytes]</c>.</summary>
public sealed record ChainInfo(string Name, string Policy, ulong Packets, ulong Bytes)
{
    public bool IsBuiltin => Policy != "-";
}
