namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>Which xtables backend the host uses. Both backends print the same save format, with small differences.</summary>
public enum IptablesBackendKind
{
    Nft,
    Legacy,
}
