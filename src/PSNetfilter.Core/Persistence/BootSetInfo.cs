namespace PSNetfilter.Core.Persistence;

/// <summary>What the header of a boot-set script says.</summary>
public sealed record BootSetInfo(int Version, string UnitName, string? NetworkNamespace, IReadOnlyList<string> ForwardNames, string ScriptPath);
