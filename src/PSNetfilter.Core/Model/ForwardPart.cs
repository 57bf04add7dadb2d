namespace PSNetfilter;

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
