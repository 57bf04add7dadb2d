namespace PSNetfilter.Core.Persistence;

/// <summary>An uninstall whose files were found, and whose unit is the module's own.</summary>
public sealed class PreparedUninstall
{
    internal PreparedUninstall(ServicePaths paths, IReadOnlyList<PlannedFile> files)
    {
        Paths = paths;
        Files = files;
    }

    public ServicePaths Paths { get; }

    public IReadOnlyList<PlannedFile> Files { get; }
}
