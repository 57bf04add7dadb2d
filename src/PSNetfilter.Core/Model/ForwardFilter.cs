using System.Net;

namespace PSNetfilter;

/// <summary>Get-PortForward's filters: a forward is listed when it matches every one that is set.</summary>
public sealed record ForwardFilter
{
    /// <summary>Names or patterns; empty: any name.</summary>
    public IReadOnlyList<NameSelector> Names { get; init; } = Array.Empty<NameSelector>();

    public Protocol? Protocol { get; init; }

    /// <summary>A port the forward's external port range contains.</summary>
    public int? ExternalPort { get; init; }

    public IPAddress? InternalAddress { get; init; }

    public IpFamily? Family { get; init; }

    public bool Matches(PortForward f) =>
        (Names.Count == 0 || Names.Any(s => s.Matches(f.Name)))
        && (Protocol is null || f.Protocol == Protocol)
        && (ExternalPort is null || (ExternalPort >= f.ExternalPort && ExternalPort <= f.ExternalPortEnd))
        && (InternalAddress is null || f.InternalAddress.Equals(InternalAddress))
        && (Family is null || f.Family == Family);
}
