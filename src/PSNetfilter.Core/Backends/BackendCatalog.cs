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

    /// <summary>The boot file of <paramref name="set"/> in the format of its backend (the iptables backend: a POSIX sh script).</summary>
    public static string RenderBootFile(BootSet set) => set.Backend switch
    {
        Iptables => RestoreScriptGenerator.Generate(set),
        _ => throw Unknown(set.Backend),
    };

    private static NetfilterException Unknown(string name) =>
        new("UnknownBackend", FailureKind.InvalidArgument, $"'{PortForwardDefinition.Printable(name)}' is not a backend of PSNetfilter; the backends are: {Iptables}, {Nftables}.", name);
}
