using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Tests.Support;

/// <summary>
/// A boot set's files (apply.sh, forwards.nft) as Install-PortForwardService writes them, in a temporary folder
/// deleted on Dispose; the script's PSNF_NFT_FILE is pointed at the folder's copy (the only change).
/// </summary>
internal sealed class BootSetFolder : IDisposable
{
    public BootSetFolder()
    {
        Directory = Path.Combine(Path.GetTempPath(), "psnfT-boot-" + NftTestNamespace.RandomHex());
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>Writes the set's files and returns the script's path.</summary>
    public string Write(BootSet set)
    {
        var paths = new ServicePaths("/", set.UnitName);
        var script = string.Empty;
        foreach (var (path, text) in BootScript.Files(set))
        {
            var local = Path.Combine(Directory, Path.GetFileName(path));
            var content = text.Replace($"PSNF_NFT_FILE='{paths.NftFile}'", $"PSNF_NFT_FILE='{Path.Combine(Directory, ServicePaths.NftFileName)}'", StringComparison.Ordinal);
            File.WriteAllText(local, content);
            if (path == paths.ScriptFile)
            {
                script = local;
            }
        }

        return script;
    }

    /// <summary>A set of nftables forwards.</summary>
    public static BootSet Nft(params PortForwardDefinition[] forwards) =>
        new("psnetfilter-test.service", null, forwards.Select(f => (f, BackendCatalog.Nftables)));

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
