namespace PSNetfilter.Core.NftJson;

/// <summary>
/// A chain. A base chain has a <see cref="Hook"/> (prerouting, input, forward, output, postrouting, ingress),
/// a <see cref="Type"/> (filter, nat, route) a <see cref="Priority"/> and a <see cref="Policy"/>;
/// a regular chain has none of them and is reached only by jump or goto.
/// </summary>
public sealed record NftChain(string Family, string Table, string Name, long Handle)
{
    public string? Type { get; init; }

    public string? Hook { get; init; }

    public int? Priority { get; init; }

    public string? Policy { get; init; }

    public bool IsBase => Hook is not null;
}
