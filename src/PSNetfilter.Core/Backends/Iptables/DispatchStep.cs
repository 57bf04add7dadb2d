namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// One jump of the dispatch tree: rule <see cref="Spec"/> in <see cref="Parent"/> sends a port range on to
/// <see cref="Chain"/>.
/// </summary>
public sealed record DispatchStep(string Table, string Parent, string Chain, string Spec);
