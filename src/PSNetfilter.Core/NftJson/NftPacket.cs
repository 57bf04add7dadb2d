using System.Net;

namespace PSNetfilter.Core.NftJson;

/// <summary>
/// One packet of a forward's connection as a hook sees it. A null field is not known in advance (the client's
/// address, an interface the route decides): a match on it is neither true nor false but unknown.
/// </summary>
public sealed record NftPacket
{
    public required string Hook { get; init; }

    public required IpFamily Family { get; init; }

    public required Protocol Protocol { get; init; }

    public IPAddress? Source { get; init; }

    public IPAddress? Destination { get; init; }

    public int? SourcePort { get; init; }

    public int? DestinationPort { get; init; }

    public string? InInterface { get; init; }

    public string? OutInterface { get; init; }

    /// <summary>ct state: new, established, related, invalid, untracked.</summary>
    public required string CtState { get; init; }

    /// <summary>ct status flags known for the packet (e.g. dnat, confirmed, seen-reply); others are unknown.</summary>
    public IReadOnlySet<string> CtStatus { get; init; } = new HashSet<string>();

    public NftDirection Direction { get; init; } = NftDirection.Original;

    /// <summary>The connection's tuple as conntrack keeps it (<c>ct original ip daddr</c>, <c>ct reply proto-src</c>, ...).</summary>
    public IPAddress? CtOriginalDestination { get; init; }

    public int? CtOriginalDestinationPort { get; init; }

    /// <summary>Known once DNAT has chosen the internal endpoint (null before DNAT).</summary>
    public IPAddress? CtReplySource { get; init; }

    public int? CtReplySourcePort { get; init; }

    /// <summary>The ct status flags this model decides; a match on any other flag is unknown.</summary>
    public static readonly IReadOnlySet<string> ModelledStatus = new HashSet<string>(StringComparer.Ordinal) { "dnat", "snat", "confirmed", "seen-reply", "expected" };

    /// <summary>Short words for a finding: "new tcp packets to 192.0.2.10 port 80".</summary>
    public string Describe()
    {
        var proto = Protocol.ToString().ToLowerInvariant();
        return Direction == NftDirection.Original
            ? $"{CtState} {proto} packets to {Destination?.ToString() ?? "any local address"} port {DestinationPort}"
            : $"{proto} replies from {Source} port {SourcePort}";
    }
}
