namespace PSNetfilter;

/// <summary>Which backend new forwards go to (-Backend, $PSNetfilterBackend, PSNETFILTER_BACKEND).</summary>
public enum BackendPreference
{
    /// <summary>nftables where it can be used (libnftables or nft, and iptables is not the legacy backend); iptables otherwise.</summary>
    Auto,

    /// <summary>Rules in PSNF- chains of the iptables tables (iptables-nft or iptables-legacy).</summary>
    Iptables,

    /// <summary>Elements and rules of the module's own nftables table, <c>table inet psnetfilter</c>.</summary>
    Nftables,
}
