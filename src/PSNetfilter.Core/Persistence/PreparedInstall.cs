namespace PSNetfilter.Core.Persistence;

/// <summary>An install whose files are planned and whose unit name was found free of foreign units.</summary>
public sealed class PreparedInstall
{
    internal PreparedInstall(InstallPlan plan) => Plan = plan;

    public InstallPlan Plan { get; }
}
