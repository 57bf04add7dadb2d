namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>A rule as the module writes it: which table and chain, which role, and the spec after <c>-A CHAIN</c>.</summary>
public sealed record RenderedRule(string Table, string Chain, ForwardPart Role, string Spec)
{
    /// <summary>The dispatch jumps from the hooked chain down to <see cref="Chain"/> (empty when the rule sits in the hooked chain).</summary>
    public IReadOnlyList<DispatchStep> Path { get; init; } = Array.Empty<DispatchStep>();
}
