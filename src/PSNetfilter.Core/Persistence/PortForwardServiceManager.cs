using PSNetfilter.Core.Engine;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Install and uninstall of a persistence unit: plan the files and check that the unit name is the module's
/// (Prepare*), then ask the observer, write them atomically, and start or stop the unit when systemd runs this
/// machine. As with the forward changes, the checks (which may ask systemctl) come first, and confirmation
/// happens before the first await of the change, on the caller's thread.
/// </summary>
public sealed class PortForwardServiceManager
{
    private readonly SystemdControl _systemd;
    private readonly IChangeObserver _observer;

    public PortForwardServiceManager(SystemdControl systemd, IChangeObserver observer)
    {
        _systemd = systemd;
        _observer = observer;
    }

    /// <summary>
    /// Plans the files of <paramref name="set"/>'s unit under <paramref name="root"/>, and refuses a unit name
    /// that another unit already has: a file in a unit directory of the root, or (installing into / while
    /// systemd runs) a unit the running systemd loaded from a file the module did not write.
    /// </summary>
    /// <exception cref="NetfilterException">RootNotFound, ForeignUnitExists, SystemctlFailed.</exception>
    public async Task<PreparedInstall> PrepareInstallAsync(BootSet set, string root, CancellationToken ct)
    {
        var plan = ServiceInstaller.Plan(set, root);
        await EnsureNotForeignInSystemdAsync(plan.Paths, uninstall: false, ct).ConfigureAwait(false);
        return new PreparedInstall(plan);
    }

    /// <summary>Writes and enables the prepared unit, and starts it when it can.</summary>
    /// <returns>Null when the observer declined (WhatIf).</returns>
    public async Task<PortForwardService?> InstallAsync(PreparedInstall prepared, bool noStart, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        var plan = prepared.Plan;
        var set = plan.Set;
        var paths = plan.Paths;
        foreach (var other in BootSetReader.FindInstalled(paths.Root).Where(o => o.UnitName != set.UnitName && o.NetworkNamespace == set.NetworkNamespace))
        {
            var shared = other.ForwardNames.Intersect(set.Forwards.Select(f => f.Name), PortForwardNames.Comparer).ToList();
            if (shared.Count > 0)
            {
                _observer.Warning($"{other.UnitName} also persists {string.Join(", ", shared)}: when either unit stops, it removes them. Keep each forward in one unit.");
            }
        }

        var canStart = paths.IsHostRoot && _systemd.IsRunning && !noStart;
        var action = plan.Changed
            ? $"Install port forward service with {set.Forwards.Count} forwards ({string.Join(", ", set.Forwards.Select(f => f.Name))}): write {plan.Describe()}" + (canStart ? "; start it" : string.Empty)
            : $"Port forward service with the same {set.Forwards.Count} forwards is installed: nothing to write ({plan.Describe()})" + (canStart ? "; start it unless active" : string.Empty);
        if (!_observer.ShouldProcess(set.UnitName, action))
        {
            return null;
        }

        ServiceInstaller.Apply(plan);
        _observer.Verbose(plan.Changed ? $"Wrote {plan.Describe()}." : $"{set.UnitName} is unchanged: the same set is installed, nothing was rewritten.");

        var state = "NotStarted";
        var started = false;
        if (canStart)
        {
            if (plan.Changed)
            {
                await _systemd.DaemonReloadAsync(ct).ConfigureAwait(false);
            }

            var before = await _systemd.IsActiveAsync(set.UnitName, ct).ConfigureAwait(false);
            if (plan.Changed || before != "active")
            {
                // restart = stop with the new script (removes the saved names' live rules), then start (adds them):
                // the saved forwards are live as saved, and nothing else is touched.
                await _systemd.RestartAsync(set.UnitName, ct).ConfigureAwait(false);
                started = true;
            }

            state = await _systemd.IsActiveAsync(set.UnitName, ct).ConfigureAwait(false);
        }
        else if (!paths.IsHostRoot)
        {
            _observer.Verbose($"Installed into the image at {paths.Root}: {set.UnitName} is enabled there and starts when it boots.");
        }
        else if (noStart)
        {
            _observer.Verbose($"-NoStart: {set.UnitName} is enabled but was not started; it starts at the next boot.");
        }
        else
        {
            _observer.Warning($"systemd is not running here ({SystemdControl.RunningMarker} does not exist), so {set.UnitName} was written and enabled but not started; it starts when this system boots with systemd. To apply the saved set now: sh {paths.ScriptFile} start");
        }

        var ns = set.NetworkNamespace;
        return new PortForwardService
        {
            UnitName = set.UnitName,
            NetworkNamespace = ns,
            Root = paths.Root,
            UnitPath = paths.OnRoot(paths.UnitFile),
            ScriptPath = paths.OnRoot(paths.ScriptFile),
            Files = plan.Files.Select(f => f.HostPath).ToList(),
            Forwards = set.Forwards.Select(d => new PortForward(d) { NetworkNamespace = ns, Persisted = true }).ToList(),
            Enabled = AtomicFile.IsLinkTo(paths.OnRoot(paths.WantsLink), paths.UnitFile),
            State = state,
            Started = started,
            Changed = plan.Changed,
        };
    }

    /// <summary>
    /// Finds the files of an installed unit, and refuses a unit the module did not write (in a unit directory
    /// of the root, or known to the running systemd when the root is /).
    /// </summary>
    /// <exception cref="NetfilterException">ForeignUnitExists, PortForwardServiceNotFound, SystemctlFailed.</exception>
    public async Task<PreparedUninstall> PrepareUninstallAsync(string unitName, string root, CancellationToken ct)
    {
        var paths = new ServicePaths(root, unitName);
        if (UnitOwnership.FindForeign(paths, uninstall: true) is { } foreign)
        {
            throw UnitOwnership.Foreign(paths, foreign, uninstall: true);
        }

        var files = ServiceInstaller.FindFiles(paths);
        if (files.Count == 0)
        {
            throw new NetfilterException(
                "PortForwardServiceNotFound",
                FailureKind.ObjectNotFound,
                $"No port forward service '{unitName}' is installed under '{paths.Root}' (no {paths.UnitFile}, {paths.ScriptFile} or enabling symlink).",
                unitName);
        }

        await EnsureNotForeignInSystemdAsync(paths, uninstall: true, ct).ConfigureAwait(false);
        return new PreparedUninstall(paths, files);
    }

    /// <summary>
    /// Stops (keeping the forwards unless <paramref name="removeForwards"/>), disables and removes a prepared unit.
    /// </summary>
    /// <returns>False when the observer declined (WhatIf).</returns>
    /// <exception cref="NetfilterException">RootNotWritable, SystemctlFailed, ServiceScriptFailed.</exception>
    public async Task<bool> UninstallAsync(PreparedUninstall prepared, bool removeForwards, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(prepared);
        var paths = prepared.Paths;
        var files = prepared.Files;
        var unitName = paths.UnitName;
        var script = paths.OnRoot(paths.ScriptFile);
        BootSetInfo? info = null;
        if (File.Exists(script))
        {
            info = BootSetReader.Parse(File.ReadAllText(script), script);
        }

        var live = paths.IsHostRoot;
        var fate = !removeForwards ? "the live forwards stay" : live ? "remove its forwards from the kernel" : "live forwards of this machine are not touched (-Root)";
        if (!_observer.ShouldProcess(unitName, $"Uninstall port forward service: remove {string.Join(", ", files.Select(f => f.HostPath))}; {fate}"))
        {
            return false;
        }

        if (live && _systemd.IsRunning)
        {
            if (removeForwards)
            {
                var state = await _systemd.IsActiveAsync(unitName, ct).ConfigureAwait(false);
                if (state == "active")
                {
                    await _systemd.StopAsync(unitName, ct).ConfigureAwait(false); // ExecStop removes exactly the saved forwards
                }
                else if (info is not null)
                {
                    await _systemd.RunScriptAsync(script, info.NetworkNamespace, "stop", ct).ConfigureAwait(false);
                }
            }
            else
            {
                // ExecStop would remove the forwards: the flag tells this one stop to keep them.
                var flag = BootSet.KeepFlagPathFor(unitName);
                Directory.CreateDirectory(Path.GetDirectoryName(flag)!);
                await File.WriteAllTextAsync(flag, "keep\n", ct).ConfigureAwait(false);
                try
                {
                    await _systemd.StopAsync(unitName, ct).ConfigureAwait(false);
                }
                finally
                {
                    AtomicFile.TryDelete(flag);
                }
            }
        }
        else if (live && removeForwards)
        {
            if (info is null)
            {
                _observer.Warning($"{script} is missing or unreadable: no forwards were removed.");
            }
            else
            {
                await _systemd.RunScriptAsync(script, info.NetworkNamespace, "stop", ct).ConfigureAwait(false);
            }
        }
        else if (removeForwards)
        {
            _observer.Warning($"-RemoveForwards: the service was installed under {paths.Root}, an image, so no live forwards of this machine were removed.");
        }

        ServiceInstaller.Remove(paths, files);
        _observer.Verbose($"Removed {string.Join(", ", files.Select(f => f.HostPath))}.");
        if (live && _systemd.IsRunning)
        {
            await _systemd.DaemonReloadAsync(ct).ConfigureAwait(false);
            await _systemd.ResetFailedAsync(unitName, ct).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// The migration step of a move between backends: every unit installed in / for <paramref name="networkNamespace"/>
    /// that restores one of <paramref name="live"/> into another backend than the one holding it now is written again
    /// with that forward in its new backend (its saved definition unchanged; the other forwards as they were), so the
    /// next boot restores it where it lives. The unit file stays as it is, and the unit is not restarted: the live
    /// forwards are already where the set now says. A unit written before sets kept their definitions is not
    /// changed, with a warning saying to install it again.
    /// </summary>
    /// <returns>The units written again, with the names moved in each.</returns>
    /// <exception cref="NetfilterException">RootNotWritable.</exception>
    public IReadOnlyList<(string UnitName, IReadOnlyList<string> Moved)> FollowBackends(string? networkNamespace, IReadOnlyCollection<PortForward> live)
    {
        ArgumentNullException.ThrowIfNull(live);
        var result = new List<(string, IReadOnlyList<string>)>();
        var now = live.Where(f => f.Backend is not null).GroupBy(f => f.Name, PortForwardNames.Comparer).ToDictionary(g => g.Key, g => g.Last().Backend!, PortForwardNames.Comparer);
        if (now.Count == 0)
        {
            return result;
        }

        foreach (var head in BootSetReader.FindInstalled("/").Where(u => string.Equals(u.NetworkNamespace, networkNamespace, StringComparison.Ordinal)))
        {
            // FindInstalled reads the headers; the definitions are at the end of the script.
            var unit = BootSetReader.Parse(File.ReadAllText(head.ScriptPath), head.ScriptPath) ?? head;
            var moved = unit.ForwardNames.Where(n => now.TryGetValue(n, out var b) && b != unit.Backends.GetValueOrDefault(n, Backends.BackendCatalog.Default)).ToList();
            if (moved.Count == 0)
            {
                continue;
            }

            if (unit.ForwardNames.Any(n => !unit.Definitions.ContainsKey(n)))
            {
                _observer.Warning($"{unit.UnitName} restores {string.Join(", ", moved)} into the {unit.Backends[moved[0]]} backend, but it was written by an earlier version that did not keep the saved definitions, so it was not changed. Install it again (Get-PortForward | Install-PortForwardService -Name {unit.UnitName}).");
                continue;
            }

            var set = new BootSet(
                unit.UnitName,
                unit.NetworkNamespace,
                unit.ForwardNames.Select(n => (unit.Definitions[n], moved.Contains(n, PortForwardNames.Comparer) ? now[n] : unit.Backends[n])));
            var plan = ServiceInstaller.Plan(set, "/");
            ServiceInstaller.Apply(plan);
            _observer.Verbose($"{unit.UnitName} now restores {string.Join(", ", moved.Select(n => $"{n} into the {now[n]} backend"))}: wrote {plan.Describe()}.");
            result.Add((unit.UnitName, moved));
        }

        return result;
    }

    /// <summary>Installing into / while systemd runs: a unit it loaded from another file than the module's is refused.</summary>
    private async Task EnsureNotForeignInSystemdAsync(ServicePaths paths, bool uninstall, CancellationToken ct)
    {
        if (!paths.IsHostRoot || !_systemd.IsRunning)
        {
            return;
        }

        var (loadState, fragmentPath) = await _systemd.ShowAsync(paths.UnitName, ct).ConfigureAwait(false);
        if (UnitOwnership.ForeignInSystemd(paths, loadState, fragmentPath) is { } foreign)
        {
            throw UnitOwnership.Foreign(paths, foreign, uninstall, fromSystemd: true);
        }
    }
}
