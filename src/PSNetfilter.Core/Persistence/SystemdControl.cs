using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// The few systemctl calls the persistence cmdlets make, and running a boot-set script directly, through
/// the module's one process funnel (<see cref="NetfilterHost.RunAsync"/>: an argument list, never a shell
/// string; a missing tool is ToolNotInstalled; a namespace is entered with nsenter, as for every other tool).
/// </summary>
public sealed class SystemdControl
{
    /// <summary>Exists when systemd is the running init (sd_booted()).</summary>
    public const string RunningMarker = "/run/systemd/system";

    private readonly IProcessRunner _runner;
    private readonly Action<string> _log;

    public SystemdControl(IProcessRunner? runner = null, Action<string>? log = null, string runningMarker = RunningMarker)
    {
        _runner = runner ?? CliWrapProcessRunner.Instance;
        _log = log ?? (_ => { });
        Marker = runningMarker;
    }

    public string Marker { get; }

    /// <summary>True when systemd runs this machine, so units can be started and stopped.</summary>
    public bool IsRunning => Directory.Exists(Marker);

    public async Task<string> IsActiveAsync(string unit, CancellationToken ct)
    {
        var r = await SystemctlAsync(ct, check: false, "is-active", unit).ConfigureAwait(false);
        var state = r.StandardOutput.Trim();
        return state.Length == 0 ? "unknown" : state;
    }

    /// <summary>What the running systemd knows of a unit: its LoadState and the file it was loaded from.</summary>
    /// <exception cref="NetfilterException">SystemctlFailed.</exception>
    public async Task<(string LoadState, string FragmentPath)> ShowAsync(string unit, CancellationToken ct)
    {
        var r = await SystemctlAsync(ct, check: true, "show", unit, "-p", "FragmentPath,LoadState").ConfigureAwait(false);
        var values = r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('=', 2))
            .Where(kv => kv.Length == 2)
            .ToDictionary(kv => kv[0], kv => kv[1].Trim(), StringComparer.Ordinal);
        return (values.GetValueOrDefault("LoadState", string.Empty), values.GetValueOrDefault("FragmentPath", string.Empty));
    }

    public Task DaemonReloadAsync(CancellationToken ct) => SystemctlAsync(ct, check: true, "daemon-reload");

    public Task RestartAsync(string unit, CancellationToken ct) => SystemctlAsync(ct, check: true, "restart", unit);

    public Task StopAsync(string unit, CancellationToken ct) => SystemctlAsync(ct, check: true, "stop", unit);

    public Task ResetFailedAsync(string unit, CancellationToken ct) => SystemctlAsync(ct, check: false, "reset-failed", unit);

    /// <summary>Runs <c>/bin/sh SCRIPT ACTION</c> inside the namespace, through the host's funnel, as the unit would.</summary>
    /// <exception cref="CommandFailedException">ServiceScriptFailed.</exception>
    public async Task RunScriptAsync(string scriptHostPath, string? networkNamespace, string action, CancellationToken ct)
    {
        var host = new NetfilterHost(networkNamespace, _runner, _log);
        var request = new ProcessRequest(SystemdUnitGenerator.Shell, new[] { scriptHostPath, action });
        var r = await host.RunAsync(request, inNamespace: true, ct).ConfigureAwait(false);
        foreach (var line in (r.StandardOutput + r.StandardError).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            _log(line);
        }

        if (r.ExitCode != 0)
        {
            throw new CommandFailedException(host.Wrap(request).Display, r.ExitCode, r.StandardError, target: scriptHostPath, program: request.Program);
        }
    }

    private async Task<ProcessResult> SystemctlAsync(CancellationToken ct, bool check, params string[] args)
    {
        var request = new ProcessRequest(ExecutableLocator.Require("systemctl", "systemd"), args);
        var r = await new NetfilterHost(null, _runner, _log).RunAsync(request, inNamespace: false, ct).ConfigureAwait(false);
        if (check && r.ExitCode != 0)
        {
            var unit = args.Length > 1 ? args[1] : null;
            throw new CommandFailedException(request.Display, r.ExitCode, r.StandardError, target: unit, hint: unit is null ? null : $"See: journalctl -u {unit}");
        }

        return r;
    }
}
