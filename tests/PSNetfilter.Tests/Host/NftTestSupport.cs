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
