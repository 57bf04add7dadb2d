using System.Net;

namespace PSNetfilter;

/// <summary>The optional parts of a forward (port ranges, source allow-list, in-interface, local access).</summary>
public sealed record ForwardExtras(
    int? ExternalPortEnd = null,
    int? InternalPortEnd = null,
    IReadOnlyList<IPNetwork>? SourceAddresses = null,
    string? InInterface = null,
    bool IncludeLocal = false,
    IPNetwork? HairpinNetwork = null)
{
    public static readonly ForwardExtras None = new();
}
