namespace PSNetfilter.Core.Engine;

/// <summary>
/// The external endpoints of a namespace's forwards, indexed by family, protocol and port, so that checking
/// a batch of N new forwards for clashes costs about N lookups rather than N times the number of forwards.
/// </summary>
public sealed class EndpointIndex
{
    private readonly Dictionary<(IpFamily, Protocol, int), List<PortForwardDefinition>> _singles = new();
    private readonly List<PortForwardDefinition> _ranges = new();

    public void Add(PortForwardDefinition d)
    {
        if (d.IsRange)
        {
            _ranges.Add(d);
            return;
        }

        var key = (d.Family, d.Protocol, d.ExternalPort);
        if (!_singles.TryGetValue(key, out var list))
        {
            _singles[key] = list = new List<PortForwardDefinition>(1);
        }

        list.Add(d);
    }

    /// <summary>A forward of another name that overlaps <paramref name="d"/>, if any.</summary>
    public PortForwardDefinition? FindOverlap(PortForwardDefinition d)
    {
        IEnumerable<PortForwardDefinition> candidates = d.IsRange && d.ExternalPortEnd - d.ExternalPort > 4096
            ? _singles.Values.SelectMany(l => l)
            : Enumerable.Range(d.ExternalPort, d.ExternalPortEnd - d.ExternalPort + 1)
                .SelectMany(p => _singles.TryGetValue((d.Family, d.Protocol, p), out var l) ? l : Enumerable.Empty<PortForwardDefinition>());
        return candidates.Concat(_ranges).FirstOrDefault(o => o.Name != d.Name && Overlaps(o, d));
    }

    /// <summary>
    /// Two forwards overlap when a packet could match both: same family and protocol, intersecting external
    /// port ranges, compatible addresses, interfaces and sources.
    /// </summary>
    public static bool Overlaps(PortForwardDefinition a, PortForwardDefinition b) =>
        a.Family == b.Family && a.Protocol == b.Protocol
        && a.ExternalPort <= b.ExternalPortEnd && b.ExternalPort <= a.ExternalPortEnd
        && (a.ExternalAddress is null || b.ExternalAddress is null || a.ExternalAddress.Equals(b.ExternalAddress))
        && (a.InInterface is null || b.InInterface is null || a.InInterface == b.InInterface)
        && (a.SourceAddresses.Count == 0 || b.SourceAddresses.Count == 0
            || a.SourceAddresses.Any(x => b.SourceAddresses.Any(y => x.Contains(y.BaseAddress) || y.Contains(x.BaseAddress))));
}
