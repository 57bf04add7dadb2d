using System.Text;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Writes a boot set's files under a root: the script, the unit, its re-apply helper, the symlink in
/// multi-user.target.wants that enables the unit and the helper's links in the .wants folders of the firewall
/// managers it follows (what <c>systemctl --root=DIR enable</c> makes of both [Install] sections). Nothing is
/// written until every new file has been written under a temporary name; then each is renamed into place,
/// the script first, so the unit never names a script that is not there.
/// </summary>
public static class ServiceInstaller
{
    /// <summary>
    /// The files of <paramref name="set"/>'s unit under <paramref name="root"/> and what writing them would change.
    /// A unit of the same name that the module did not write, in any unit directory of the root, is refused.
    /// </summary>
    /// <exception cref="NetfilterException">RootNotFound, ForeignUnitExists.</exception>
    public static InstallPlan Plan(BootSet set, string root)
    {
        ArgumentNullException.ThrowIfNull(set);
        var paths = new ServicePaths(root, set.UnitName);
        if (!Directory.Exists(paths.Root))
        {
            throw new NetfilterException(
                "RootNotFound",
                FailureKind.ObjectNotFound,
                $"The root directory '{paths.Root}' does not exist. -Root names the top of the file system to install into (an image being built); without it the service goes into /.",
                paths.Root);
        }

        var reapply = new ServicePaths(paths.Root, paths.ReapplyUnitName);
        foreach (var p in new[] { paths, reapply })
        {
            if (UnitOwnership.FindForeign(p, uninstall: false) is { } foreign)
            {
                throw UnitOwnership.Foreign(p, foreign, uninstall: false);
            }
        }

        var utf8 = new UTF8Encoding(false);
        var files = BackendCatalog.RenderBootFiles(set).Select(f => File(paths, f.Path, utf8.GetBytes(f.Text))).ToList();
        if (!files.Any(f => f.TargetPath == paths.NftFile) && Exists(paths.OnRoot(paths.NftFile)))
        {
            // The set no longer has nftables forwards: the nft file of an earlier set goes, after the new script is in place.
            files.Add(new PlannedFile(paths.NftFile, paths.OnRoot(paths.NftFile), null, null, 0, FileChange.Removed));
        }

        files.AddRange(new[]
        {
            File(paths, paths.UnitFile, utf8.GetBytes(SystemdUnitGenerator.Generate(set))),
            File(paths, paths.ReapplyUnitFile, utf8.GetBytes(SystemdUnitGenerator.GenerateReapply(set))),
            Link(paths, paths.WantsLink, paths.UnitFile),
        });
        files.AddRange(paths.ReapplyLinks.Select(l => Link(paths, l, paths.ReapplyUnitFile)));
        return new InstallPlan(set, paths, files);
    }

    private static PlannedFile Link(ServicePaths paths, string target, string pointsTo)
    {
        var link = paths.OnRoot(target);
        var state = AtomicFile.IsLinkTo(link, pointsTo) ? FileChange.Unchanged : Exists(link) ? FileChange.Updated : FileChange.Created;
        return new PlannedFile(target, link, null, pointsTo, 0, state);
    }

    /// <summary>
    /// Writes what the plan says. On any failure nothing is renamed into place, the temporary files and the
    /// directories this call created are removed again, and a RootNotWritable error names the path.
    /// </summary>
    /// <exception cref="NetfilterException">RootNotWritable.</exception>
    public static void Apply(InstallPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var pending = plan.Files.Where(f => f.Change is not (FileChange.Unchanged or FileChange.Removed)).ToList();
        var removed = plan.Files.Where(f => f.Change == FileChange.Removed).ToList();
        if (pending.Count == 0 && removed.Count == 0)
        {
            return;
        }

        var createdDirs = new List<string>();
        var temps = new List<(PlannedFile File, string Temp)>();
        string current = plan.Paths.Root;
        try
        {
            foreach (var f in pending)
            {
                current = f.HostPath;
                EnsureInsideRoot(Path.GetDirectoryName(f.HostPath)!, plan.Paths.Root);
                EnsureDirectory(Path.GetDirectoryName(f.HostPath)!, plan.Paths.Root, createdDirs);
                var temp = f.IsLink ? AtomicFile.CreateTempLink(f.HostPath, f.LinkTarget!) : AtomicFile.WriteTemp(f.HostPath, f.Content!, f.Mode);
                temps.Add((f, temp));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            foreach (var (_, temp) in temps)
            {
                AtomicFile.TryDelete(temp);
            }

            for (var i = createdDirs.Count - 1; i >= 0; i--)
            {
                TryRemoveEmptyDirectory(createdDirs[i]);
            }

            throw NotWritable(current, ex);
        }

        // Commit: renames within one directory each; the script before the unit, the unit before its link.
        for (var i = 0; i < temps.Count; i++)
        {
            var (f, temp) = temps[i];
            current = f.HostPath;
            try
            {
                AtomicFile.Commit(temp, f.HostPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                for (var j = i; j < temps.Count; j++)
                {
                    AtomicFile.TryDelete(temps[j].Temp);
                }

                throw NotWritable(current, ex, partly: i > 0);
            }
        }

        foreach (var f in removed)
        {
            try
            {
                System.IO.File.Delete(f.HostPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw NotWritable(f.HostPath, ex, partly: true);
            }
        }
    }

    /// <summary>
    /// The files of an installed unit under a root: script, unit, and every symlink in a .wants folder
    /// that points to the unit in /etc/systemd/system (not one that enables a unit of the same name elsewhere).
    /// Only files that exist are listed.
    /// </summary>
    public static IReadOnlyList<PlannedFile> FindFiles(ServicePaths paths)
    {
        var result = new List<PlannedFile>();
        var systemd = paths.OnRoot(ServicePaths.SystemdDirectory);
        if (Directory.Exists(systemd))
        {
            foreach (var wants in Directory.EnumerateDirectories(systemd, "*.wants").Order(StringComparer.Ordinal))
            {
                foreach (var name in new[] { paths.UnitName, paths.ReapplyUnitName })
                {
                    var link = Path.Combine(wants, name);
                    var info = new FileInfo(link);
                    if (info.LinkTarget is { } target && (target == ServicePaths.SystemdDirectory + "/" + name || target == "../" + name))
                    {
                        var targetPath = ServicePaths.SystemdDirectory + "/" + Path.GetFileName(wants) + "/" + name;
                        result.Add(new PlannedFile(targetPath, link, null, target, 0, FileChange.Removed));
                    }
                }
            }
        }

        var helper = paths.OnRoot(paths.ReapplyUnitFile);
        if (Exists(helper) && UnitOwnership.IsModuleUnit(helper))
        {
            result.Add(new PlannedFile(paths.ReapplyUnitFile, helper, null, null, 0, FileChange.Removed));
        }

        foreach (var p in new[] { paths.UnitFile, paths.ScriptFile, paths.NftFile })
        {
            var host = paths.OnRoot(p);
            if (Exists(host))
            {
                result.Add(new PlannedFile(p, host, null, null, 0, FileChange.Removed));
            }
        }

        return result;
    }

    /// <summary>
    /// Removes the files (links first, the script last), the unit's folder and the followed managers' .wants
    /// folders when they are left empty.
    /// </summary>
    /// <exception cref="NetfilterException">RootNotWritable.</exception>
    public static void Remove(ServicePaths paths, IReadOnlyList<PlannedFile> files)
    {
        foreach (var f in files)
        {
            try
            {
                System.IO.File.Delete(f.HostPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw NotWritable(f.HostPath, ex);
            }
        }

        TryRemoveEmptyDirectory(paths.OnRoot(paths.ConfigDirectory));

        // The .wants folders of the followed managers were made for the helper's links: gone when left empty.
        foreach (var link in paths.ReapplyLinks)
        {
            TryRemoveEmptyDirectory(Path.GetDirectoryName(paths.OnRoot(link))!);
        }
    }

    private static PlannedFile File(ServicePaths paths, string target, byte[] content)
    {
        var host = paths.OnRoot(target);
        var change = AtomicFile.IsCurrent(host, content, AtomicFile.Mode0644) ? FileChange.Unchanged : Exists(host) ? FileChange.Updated : FileChange.Created;
        return new PlannedFile(target, host, content, null, AtomicFile.Mode0644, change);
    }

    /// <summary>A file, a directory or a symlink (dangling ones too) is at the path.</summary>
    internal static bool Exists(string path) => System.IO.File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget is not null;

    private static void EnsureDirectory(string dir, string root, List<string> created)
    {
        if (Directory.Exists(dir))
        {
            return;
        }

        var parent = Path.GetDirectoryName(dir);
        if (parent is not null && parent.Length >= root.Length && parent != dir)
        {
            EnsureDirectory(parent, root, created);
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dir);
        }
        else
        {
            Directory.CreateDirectory(dir, AtomicFile.Mode0755);
        }
        created.Add(dir);
    }

    private static void TryRemoveEmptyDirectory(string dir)
    {
        try
        {
            if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any())
            {
                Directory.Delete(dir);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // best effort
        }
    }

    private static NetfilterException NotWritable(string path, Exception ex, bool partly = false) =>
        new(
            "RootNotWritable",
            FailureKind.PermissionDenied,
            $"Cannot write '{path}': {ex.Message}" + (partly ? " Some files were already replaced: install again." : " Nothing was installed."),
            path,
            ex);

    /// <summary>
    /// Refuses a directory under an alternate root that a symlink leads out of the root (an image whose
    /// /etc/systemd/system links to an absolute path would otherwise be written on this machine).
    /// </summary>
    private static void EnsureInsideRoot(string dir, string root)
    {
        if (root == "/")
        {
            return;
        }

        var current = root;
        foreach (var part in dir[root.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            current = current + "/" + part;
            var target = new DirectoryInfo(current).LinkTarget;
            if (target is null)
            {
                continue;
            }

            var resolved = Path.GetFullPath(target.StartsWith('/') ? target : Path.Combine(Path.GetDirectoryName(current)!, target));
            if (resolved != root && !resolved.StartsWith(root + "/", StringComparison.Ordinal))
            {
                throw new IOException($"'{current}' is a symlink to '{target}', outside the root '{root}'.");
            }
        }
    }
}
