using PSNetfilter.Core.Diagnostics;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>BothBackends: the other xtables backend (legacy beside nf_tables, or the reverse) holds rules of its own.</summary>
public static class BothBackendsCheck
{
    public static PortForwardFinding? Evaluate(IpFamily family, string otherBackend, int otherRules) =>
        otherRules <= 0
            ? null
            : new(null, FindingSeverity.Warning, "BothBackends",
                $"{otherBackend} also holds {otherRules} rule(s) for {family}.",
                "Rules of iptables-nft and iptables-legacy both apply to packets; a DROP or DNAT in the other backend can override the forward and does not show in this backend's listing.",
                $"Inspect them with {otherBackend}-save and move them to one backend.");
}
