namespace PSNetfilter;

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
