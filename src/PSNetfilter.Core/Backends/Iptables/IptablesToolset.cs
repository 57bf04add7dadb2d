namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>The save/restore programs of one backend, resolved to paths.</summary>
public sealed record IptablesToolset(IptablesBackendKind Kind, string Version, string Save4, string Restore4, string Save6, string Restore6)
{
    public string Describe() => $"iptables {Version} ({(Kind == IptablesBackendKind.Nft ? "nf_tables" : "legacy")})";
}
