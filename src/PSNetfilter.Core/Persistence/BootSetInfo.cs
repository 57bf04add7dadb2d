namespace PSNetfilter.Core.Persistence;

/// <summary>What the header of a boot-set script says.</summary>
public sealed record BootSetInfo(int Version, string UnitName, string? NetworkNamespace, IReadOnlyList<string> ForwardNames, string ScriptPath)
{
    /// <summary>The backend each saved forward is restored into, by name.</summary>
    public IReadOnlyDictionary<string, string> Backends { get; init; } = new Dictionary<string, string>();

    /// <summary>The saved definitions by name (sets written before they were kept have none).</summary>
    public IReadOnlyDictionary<string, PortForwardDefinition> Definitions { get; init; } = new Dictionary<string, PortForwardDefinition>();
}
