namespace PSNetfilter.Core.Persistence;

/// <summary>The files of a unit and what installing would change; made without writing anything.</summary>
public sealed class InstallPlan
{
    internal InstallPlan(BootSet set, ServicePaths paths, IReadOnlyList<PlannedFile> files)
    {
        Set = set;
        Paths = paths;
        Files = files;
    }

    public BootSet Set { get; }

    public ServicePaths Paths { get; }

    /// <summary>
    /// The script, the unit file, its re-apply helper, the enabling symlink and the helper's links in the
    /// followed managers' .wants folders, in the order they are committed.
    /// </summary>
    public IReadOnlyList<PlannedFile> Files { get; }

    public bool Changed => Files.Any(f => f.Change != FileChange.Unchanged);

    public bool UnitFileChanged => Files.Any(f => f.TargetPath == Paths.UnitFile && f.Change != FileChange.Unchanged);

    public string Describe() => string.Join(", ", Files.Select(f => f.ToString()));
}
