namespace PSNetfilter.Core.Host;

/// <summary>The real <see cref="IKernelAccess"/>: <see cref="NamespaceThread"/> for /proc, <see cref="NftChains"/> for netlink.</summary>
public sealed class NamespaceKernelAccess : IKernelAccess
{
    public static readonly NamespaceKernelAccess Instance = new();

    public Task<string> ReadProcAsync(string? networkNamespace, string path) => NamespaceThread.ReadFileAsync(networkNamespace, path);

    public Task WriteProcAsync(string? networkNamespace, string path, string text) => NamespaceThread.WriteFileAsync(networkNamespace, path, text);

    public Task<IReadOnlyList<(string Table, string Chain)>> ListChainsAsync(string? networkNamespace, IpFamily family) => NftChains.ListAsync(networkNamespace, family);

    public Task<IReadOnlyList<(string Family, string Table, string Chain)>> ListAllChainsAsync(string? networkNamespace) => NftChains.ListAllAsync(networkNamespace);
}
