using System.Runtime.InteropServices;

namespace PSNetfilter.Core.Host;

/// <summary>Checks made before any process runs: privileges and the network namespace name.</summary>
public static class SystemChecks
{
    public const string NetnsDirectory = "/run/netns";

    public static bool IsRoot() => OperatingSystem.IsLinux() && geteuid() == 0;

    /// <exception cref="NetfilterException">NotRoot.</exception>
    public static void RequireRoot()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new NetfilterException("UnsupportedPlatform", FailureKind.OperationFailed, "PSNetfilter manages Linux netfilter and runs on Linux only.");
        }

        if (!IsRoot())
        {
            throw new NetfilterException(
                "NotRoot",
                FailureKind.PermissionDenied,
                "Reading and changing netfilter rules needs root. Run pwsh as root (for example: sudo pwsh).")
            {
                RecommendedAction = "Run pwsh as root.",
            };
        }
    }

    /// <summary>Checks that <paramref name="name"/> is a namespace name (<see cref="NetworkNamespaceName"/>) and that it exists.</summary>
    /// <exception cref="NetfilterException">InvalidNetworkNamespace or NetworkNamespaceNotFound.</exception>
    public static void ValidateNetworkNamespace(string name, string netnsDirectory = NetnsDirectory)
    {
        name = NetworkNamespaceName.Check(name ?? string.Empty)!;
        if (!File.Exists(Path.Combine(netnsDirectory, name)))
        {
            throw new NetfilterException(
                "NetworkNamespaceNotFound",
                FailureKind.ObjectNotFound,
                $"The network namespace '{name}' does not exist. 'ip netns list' shows the existing ones; 'ip netns add {name}' creates it.",
                name);
        }
    }

    [DllImport("libc", SetLastError = false)]
    private static extern uint geteuid();
}
