using System.Security.Cryptography;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Host;

/// <summary>Why a test of nft in a namespace cannot run here (not root, no nft, no libnftables), or null.</summary>
internal static class NftTestRequirements
{
    public static string? SkipReason() =>
        !SystemChecks.IsRoot() ? "needs root: creates a network namespace"
        : ExecutableLocator.Find("nft") is null ? "needs nft (Debian package nftables)"
        : Libnftables.UnavailableReason is { } reason ? "needs libnftables: " + reason
        : null;
}

/// <summary>A [Fact] that runs only as root with nft and libnftables installed; skipped with the reason otherwise.</summary>
public sealed class NftFactAttribute : FactAttribute
{
    public NftFactAttribute() => Skip = NftTestRequirements.SkipReason();
}

/// <summary>A [Theory] that runs only as root with nft and libnftables installed; skipped with the reason otherwise.</summary>
public sealed class NftTheoryAttribute : TheoryAttribute
{
    public NftTheoryAttribute() => Skip = NftTestRequirements.SkipReason();
}

/// <summary>
/// A throw-away namespace <c>psnfL-&lt;hex&gt;</c> for these tests (the shared <see cref="TestNamespace"/> names its
/// own psnfx-*), deleted on Dispose even when the test failed; its tools run through <see cref="Sh"/>.
/// </summary>
internal sealed class NftTestNamespace : IDisposable
{
    public NftTestNamespace()
    {
        Name = "psnfL-" + RandomHex();
        Sh.Check("ip", "netns", "add", Name);
    }

    public string Name { get; }

    public static string RandomHex() => Convert.ToHexString(RandomNumberGenerator.GetBytes(5)).ToLowerInvariant();

    /// <summary>nft's text listing of the namespace's whole ruleset, as <c>ip netns exec NS nft list ruleset</c> prints it.</summary>
    public string Ruleset() => Sh.Check("ip", "netns", "exec", Name, "nft", "list", "ruleset");

    /// <summary>A runner for <paramref name="path"/>: "in-process" (libnftables) or "process" (nft through the host's funnel).</summary>
    public NftRunner Runner(string path) => path switch
    {
        "in-process" => new InProcessNftRunner(Name),
        "process" => new ProcessNftRunner(new NetfilterHost(Name)),
        _ => throw new ArgumentOutOfRangeException(nameof(path), path, "in-process or process"),
    };

    public void Dispose()
    {
        for (var attempt = 0; attempt < 5 && File.Exists(Path.Combine(SystemChecks.NetnsDirectory, Name)); attempt++)
        {
            if (Sh.Run("ip", "netns", "delete", Name).ExitCode != 0)
            {
                Thread.Sleep(100);
            }
        }
    }
}
