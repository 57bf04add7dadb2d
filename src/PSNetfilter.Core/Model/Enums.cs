namespace PSNetfilter;

/// <summary>Transport protocol of a forward.</summary>
public enum Protocol
{
    Tcp,
    Udp,
}

/// <summary>Address family; decides between iptables and ip6tables.</summary>
public enum IpFamily
{
    IPv4,
    IPv6,
}

/// <summary>How replies are made to come back through the gateway.</summary>
public enum SnatMode
{
    /// <summary>SNAT to a fixed address (by default the gateway's source address on the route to the internal host).</summary>
    Snat,

    /// <summary>MASQUERADE: the address of the outgoing interface, chosen per packet.</summary>
    Masquerade,

    /// <summary>No source NAT: the internal host sees client addresses and must route replies via the gateway.</summary>
    None,
}

/// <summary>One of the kernel rules a forward consists of.</summary>
public enum ForwardPart
{
    /// <summary>nat/PSNF-PREROUTING: DNAT of new connections to the internal endpoint.</summary>
    Dnat,

    /// <summary>nat/PSNF-POSTROUTING: SNAT or MASQUERADE of the forwarded connections.</summary>
    Snat,

    /// <summary>filter/PSNF-FORWARD: accept the forwarded connection in both directions.</summary>
    Forward,

    /// <summary>nat/PSNF-OUTPUT: DNAT of connections the gateway itself opens (-IncludeLocal).</summary>
    Local,

    /// <summary>nat/PSNF-POSTROUTING: MASQUERADE of hairpin connections of a -NoSnat -IncludeLocal forward.</summary>
    Hairpin,
}
