namespace PSNetfilter.Core.Host;

/// <summary>
/// What the module reads and writes in a namespace without a process: /proc/sys/net files (from a thread that
/// entered the namespace) and netlink listings of nf_tables chains. Tests give the host a fake.
/// </summary>
public interface IKernelAccess
{
    /// <summary>Reads a /proc file as the namespace sees it.</summary>
    Task<string> ReadProcAsync(string? networkNamespace, string path);

    /// <summary>Writes a /proc file as the namespace sees it.</summary>
    Task WriteProcAsync(string? networkNamespace, string path, string text);

    /// <summary>The nf_tables chains of one family (table, chain).</summary>
    Task<IReadOnlyList<(string Table, string Chain)>> ListChainsAsync(string? networkNamespace, IpFamily family);

    /// <summary>The nf_tables chains of every family (family, table, chain).</summary>
    Task<IReadOnlyList<(string Family, string Table, string Chain)>> ListAllChainsAsync(string? networkNamespace);
}
