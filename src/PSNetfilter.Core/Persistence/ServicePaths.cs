namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Where a unit's files live, inside the target system (<see cref="UnitFile"/> etc., as the unit refers
/// to them) and on this machine under <see cref="Root"/> (<see cref="OnRoot"/>).
/// </summary>
public sealed class ServicePaths
{
    public const string SystemdDirectory = "/etc/systemd/system";
    public const string WantsDirectory = SystemdDirectory + "/multi-user.target.wants";
    public const string ConfigRoot = "/etc/psnetfilter";
    public const string ScriptName = "apply.sh";

    public ServicePaths(string root, string unitName)
    {
        Root = NormalizeRoot(root);
        UnitName = unitName;
    }

    /// <summary>Absolute, without a trailing slash except for "/" itself.</summary>
    public string Root { get; }

    public string UnitName { get; }

    /// <summary>True when the target system is this machine (no alternate root).</summary>
    public bool IsHostRoot => Root == "/";

    public string UnitFile => SystemdDirectory + "/" + UnitName;

    public string ConfigDirectory => ConfigRoot + "/" + ServiceNames.BaseName(UnitName);

    public string ScriptFile => ConfigDirectory + "/" + ScriptName;

    public const string NftFileName = "forwards.nft";

    /// <summary>The nft file the script loads for the set's forwards of the nftables backend.</summary>
    public string NftFile => ConfigDirectory + "/" + NftFileName;

    public string WantsLink => WantsDirectory + "/" + UnitName;

    /// <summary>The re-apply helper of the unit (<see cref="SystemdUnitGenerator.GenerateReapply"/>).</summary>
    public string ReapplyUnitName => ServiceNames.ReapplyName(UnitName);

    public string ReapplyUnitFile => SystemdDirectory + "/" + ReapplyUnitName;

    /// <summary>The helper's links in the .wants folder of each followed firewall manager.</summary>
    public IReadOnlyList<string> ReapplyLinks =>
        SystemdUnitGenerator.FollowedManagers.Select(m => SystemdDirectory + "/" + m + ".wants/" + ReapplyUnitName).ToList();

    /// <summary>A path of the target system as seen from here: under <see cref="Root"/>.</summary>
    public string OnRoot(string targetPath) => IsHostRoot ? targetPath : Root + targetPath;

    public static string NormalizeRoot(string root)
    {
        var full = Path.GetFullPath(string.IsNullOrEmpty(root) ? "/" : root);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }
}
