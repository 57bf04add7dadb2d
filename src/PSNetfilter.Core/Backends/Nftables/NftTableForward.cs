namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// A forward read back from <c>table inet psnetfilter</c>: its definition (null when the DNAT part is gone or what is
/// left does not make a valid forward), the counter of its accept element, the parts that should be there and are
/// not (<see cref="Missing"/>: dnat, local, snat, masq, hairpin, fwd, description), and the parts that are.
/// </summary>
public sealed record NftTableForward(
    string Name,
    PortForwardDefinition? Definition,
    long Packets,
    long Bytes,
    IReadOnlyList<string> Missing,
    IReadOnlyList<NftPresentPart> Parts)
{
    public bool IsComplete => Definition is not null && Missing.Count == 0;
}
