namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Whether a unit name belongs to PSNetfilter: the module overwrites or removes only unit files that begin
/// with its marker line (<see cref="SystemdUnitGenerator.Marker"/>). A unit of the same name anywhere systemd
/// loads units from (an admin's own in /etc, a runtime one in /run, a vendor's in /usr/lib or /lib) would be
/// overwritten, shadowed or removed, so it is refused with <c>ForeignUnitExists</c> naming the file.
/// </summary>
public static class UnitOwnership
{
    public const string ErrorId = "ForeignUnitExists";

    /// <summary>
    /// The unit directories of a system, highest priority first; the first one is where the module writes
    /// (<see cref="ServicePaths.SystemdDirectory"/>).
    /// </summary>
    public static readonly IReadOnlyList<string> UnitDirectories = new[]
    {
        ServicePaths.SystemdDirectory, "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
    };

    /// <summary>
    /// The first unit file of <paramref name="paths"/>' name under its root that the module did not write, or
    /// null. For an uninstall, a unit the module wrote in /etc is what gets removed, so the units it shadows
    /// do not matter; without one, any other unit of the name would be what the name stands for.
    /// </summary>
    public static string? FindForeign(ServicePaths paths, bool uninstall)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var own = paths.OnRoot(paths.UnitFile);
        if (ServiceInstaller.Exists(own) && !IsModuleUnit(own))
        {
            return own;
        }

        if (uninstall && ServiceInstaller.Exists(own))
        {
            return null;
        }

        foreach (var dir in UnitDirectories.Skip(1))
        {
            var path = paths.OnRoot(dir + "/" + paths.UnitName);
            if (ServiceInstaller.Exists(path) && !IsModuleUnit(path))
            {
                return path;
            }
        }

        return null;
    }

    /// <summary>
    /// What the running systemd says of the unit (<c>systemctl show -p FragmentPath,LoadState</c>): foreign
    /// when it is loaded (or masked) from a file that is not the module's unit in /etc.
    /// </summary>
    /// <returns>A description of the foreign unit ("FILE" or "UNIT (LoadState=...)"), or null.</returns>
    public static string? ForeignInSystemd(ServicePaths paths, string loadState, string fragmentPath)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (loadState is "" or "not-found")
        {
            return null;
        }

        if (fragmentPath == paths.UnitFile || (fragmentPath.Length > 0 && fragmentPath != "/dev/null" && IsModuleUnit(fragmentPath)))
        {
            return null;
        }

        return fragmentPath.Length > 0 ? fragmentPath : $"{paths.UnitName} (LoadState={loadState})";
    }

    /// <summary>A regular file (not a symlink: the module writes none) whose first line is the module's marker.</summary>
    public static bool IsModuleUnit(string hostPath)
    {
        try
        {
            var info = new FileInfo(hostPath);
            if (!info.Exists || info.LinkTarget is not null)
            {
                return false;
            }

            using var reader = new StreamReader(hostPath);
            var buffer = new char[SystemdUnitGenerator.Marker.Length];
            return reader.ReadBlock(buffer, 0, buffer.Length) == buffer.Length && new string(buffer) == SystemdUnitGenerator.Marker;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false; // unreadable: not known to be the module's
        }
    }

    /// <exception cref="NetfilterException">ForeignUnitExists.</exception>
    public static NetfilterException Foreign(ServicePaths paths, string what, bool uninstall, bool fromSystemd = false)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var source = fromSystemd ? $"The running systemd already knows {paths.UnitName} from '{what}'" : $"'{what}' is a unit";
        var message = uninstall
            ? $"{source}, which PSNetfilter did not write (it lacks the line '{SystemdUnitGenerator.Marker}'). Uninstall-PortForwardService removes only units it wrote. Nothing was removed."
            : $"{source}, which PSNetfilter did not write (it lacks the line '{SystemdUnitGenerator.Marker}'): installing {paths.UnitName} would {(what == paths.OnRoot(paths.UnitFile) ? "overwrite" : "shadow")} it. Nothing was installed. Choose another name with -Name (the default is psnetfilter.service, or psnetfilter-NS.service for a namespace).";
        return new NetfilterException(ErrorId, FailureKind.ResourceExists, message, what);
    }
}
