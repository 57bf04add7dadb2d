using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Backends;

/// <summary>The backends by name: the one place that knows which folder under Backends/ implements which.</summary>
public static class BackendCatalog
{
    public const string Iptables = "iptables";

    public const string Nftables = "nftables";

    /// <summary>The backend used when none is chosen.</summary>
    public const string Default = Iptables;

    /// <summary>The backend named <paramref name="name"/> for the namespace of <paramref name="host"/>.</summary>
    public static INetfilterBackend Create(string name, NetfilterHost host) => name switch
    {
        Iptables => new IptablesNetfilterBackend(host),
        Nftables => new Nftables.NftablesNetfilterBackend(host),
        _ => throw Unknown(name),
    };

    /// <summary>
    /// Every backend of the namespace as one (<see cref="BackendSet"/>), new forwards going to <paramref name="preferred"/>:
    /// what the cmdlets work with, so that Get, Test and Remove see the forwards of both backends.
    /// </summary>
    public static BackendSet CreateSet(string preferred, NetfilterHost host) =>
        new(Create(preferred, host), new[] { Iptables, Nftables }.Where(n => n != preferred).Select(n => Create(n, host)));

    /// <summary>
    /// The backend a preference names. Auto is nftables when nft can run here (libnftables loads, or the nft
    /// executable is installed) and the host's iptables is not the legacy backend (whose rules nftables cannot see
    /// beside its own); iptables otherwise.
    /// </summary>
    public static string Resolve(BackendPreference preference) => preference switch
    {
        BackendPreference.Iptables => Iptables,
        BackendPreference.Nftables => Nftables,
        _ => (Libnftables.IsAvailable || ExecutableLocator.Find("nft") is not null) && !IptablesIsLegacy() ? Nftables : Iptables,
    };

    /// <summary>True when the host's iptables is iptables-legacy (its alternative, or PSNETFILTER_IPTABLES_BACKEND=legacy).</summary>
    private static bool IptablesIsLegacy()
    {
        var forced = Environment.GetEnvironmentVariable("PSNETFILTER_IPTABLES_BACKEND")?.Trim().ToLowerInvariant();
        if (forced is "legacy" or "nft")
        {
            return forced == "legacy";
        }

        var iptables = ExecutableLocator.Find("iptables");
        if (iptables is null)
        {
            return false;
        }

        try
        {
            var target = new FileInfo(iptables).ResolveLinkTarget(returnFinalTarget: true)?.Name ?? Path.GetFileName(iptables);
            return target.Contains("legacy", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The boot-set files of <paramref name="set"/> (<see cref="BootScript.Files"/>): the nft file of its nftables forwards, if any, and the script.</summary>
    public static IReadOnlyList<(string Path, string Text)> RenderBootFiles(BootSet set) => BootScript.Files(set);

    /// <summary>A backend name, or UnknownBackend.</summary>
    /// <exception cref="NetfilterException">UnknownBackend.</exception>
    public static void Check(string name)
    {
        if (name is not (Iptables or Nftables))
        {
            throw Unknown(name);
        }
    }

    private static NetfilterException Unknown(string name) =>
        new("UnknownBackend", FailureKind.InvalidArgument, $"'{PortForwardDefinition.Printable(name)}' is not a backend of PSNetfilter; the backends are: {Iptables}, {Nftables}.", name);
}
