using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace PSNetfilter.Core.Host;

/// <summary>
/// The kernel side of one network namespace (or the host's own): every process the module runs goes through
/// here and through <see cref="IProcessRunner"/>. It enters a named namespace with <c>nsenter --net</c>,
/// passes <c>-w</c> to iptables-restore, and logs each command line and payload for -Verbose.
/// </summary>
public sealed partial class NetfilterHost
{

    private readonly IProcessRunner _runner;
    private readonly Action<string> _log;

    /// <param name="networkNamespace">A named namespace, or null for the host's own.</param>
    /// <exception cref="NetfilterException">InvalidNetworkNamespace (an empty or blank name is never the host).</exception>
    public NetfilterHost(string? networkNamespace, IProcessRunner? runner = null, Action<string>? log = null)
    {
        NetworkNamespace = NetworkNamespaceName.Check(networkNamespace);
        _runner = runner ?? CliWrapProcessRunner.Instance;
        _log = log ?? (_ => { });
    }

    public string? NetworkNamespace { get; }

    /// <summary>Writes one line to the -Verbose log.</summary>
    public void Log(string message) => _log(message);

    /// <summary>Skip the root and namespace checks (unit tests with a fake runner).</summary>
    public bool SkipSystemChecks { get; init; }

    /// <summary>Where the per-namespace locks live.</summary>
    public string LockDirectory { get; init; } = NamespaceLock.DefaultDirectory;

    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>/proc and netlink inside the namespace without a process (tests give a fake).</summary>
    public IKernelAccess Kernel { get; init; } = NamespaceKernelAccess.Instance;

    /// <summary>Root, a valid and existing namespace: checked before anything runs.</summary>
    public void EnsureUsable()
    {
        if (SkipSystemChecks)
        {
            return;
        }

        SystemChecks.RequireRoot();
        if (NetworkNamespace is not null)
        {
            SystemChecks.ValidateNetworkNamespace(NetworkNamespace);
        }
    }

    public Task<NamespaceLock> LockAsync(CancellationToken ct) =>
        NamespaceLock.AcquireAsync(NetworkNamespace, LockTimeout, ct, LockDirectory);

    /// <summary>The namespace lock if it is free now; null when another change holds it.</summary>
    public NamespaceLock? TryLock() => NamespaceLock.TryAcquire(NetworkNamespace, LockDirectory);

    /// <summary>
    /// <c>ip route get</c> for many destinations in one <c>ip -force -batch</c> process: the source address the
    /// kernel picks (prefsrc) and the outgoing device. A destination without a route maps to (null, null).
    /// </summary>
    public async Task<IReadOnlyDictionary<IPAddress, (IPAddress? Source, string? Device)>> GetRoutesAsync(IEnumerable<IPAddress> destinations, CancellationToken ct)
    {
        var wanted = destinations.Distinct().ToList();
        var map = wanted.ToDictionary(d => d, _ => ((IPAddress?)null, (string?)null));
        if (wanted.Count == 0)
        {
            return map;
        }

        var input = string.Concat(wanted.Select(d => $"route get {d}\n"));
        var result = await RunIpAsync(new[] { "-force", "-j", "-batch", "-" }, input, ct).ConfigureAwait(false);
        foreach (var line in result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                using var doc = JsonDocument.Parse(line);
                foreach (var route in doc.RootElement.EnumerateArray())
                {
                    if (route.TryGetProperty("dst", out var dst) && IPAddress.TryParse(dst.GetString(), out var d) && map.ContainsKey(d))
                    {
                        var src = route.TryGetProperty("prefsrc", out var p) && IPAddress.TryParse(p.GetString(), out var a) ? a : null;
                        var dev = route.TryGetProperty("dev", out var v) ? v.GetString() : null;
                        map[d] = (src, dev);
                    }
                }
            }
            catch (JsonException)
            {
                // a line that is not a route answer: ignore it, the destination stays unresolved
            }
        }

        return map;
    }

    /// <summary>
    /// The namespace's interfaces and their addresses, from one <c>ip -j addr show</c> (every link is listed, with
    /// or without addresses).
    /// </summary>
    /// <exception cref="CommandFailedException">ip exited non-zero.</exception>
    public async Task<GatewayInventory> GetInventoryAsync(CancellationToken ct)
    {
        var args = new[] { "-j", "addr", "show" };
        var result = await RunIpAsync(args, null, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new CommandFailedException(IpDisplay(args), result.ExitCode, result.StandardError);
        }

        return GatewayInventory.Parse(result.StandardOutput);
    }

    private async Task<ProcessResult> RunIpAsync(IEnumerable<string> arguments, string? input, CancellationToken ct) =>
        await RunAsync(IpRequest(arguments, input), inNamespace: false, ct).ConfigureAwait(false);

    private ProcessRequest IpRequest(IEnumerable<string> arguments, string? input)
    {
        var ip = ExecutableLocator.Require("ip", "iproute2");
        var args = new List<string>();
        if (NetworkNamespace is not null)
        {
            args.AddRange(new[] { "-n", NetworkNamespace });
        }

        args.AddRange(arguments);
        return new ProcessRequest(ip, args, input);
    }

    private string IpDisplay(IEnumerable<string> arguments) => IpRequest(arguments, null).Display;

    /// <summary>Whether the namespace routes packets of <paramref name="family"/> (net.ipv4.ip_forward / net.ipv6.conf.all.forwarding).</summary>
    public async Task<bool> IsForwardingEnabledAsync(IpFamily family, CancellationToken ct)
    {
        // Read in-process from /proc/sys/net as the namespace sees it (no sysctl process on the hot path).
        var path = "/proc/sys/" + ForwardingKey(family).Replace('.', '/');
        _log($"Reading {path}" + (NetworkNamespace is null ? string.Empty : $" in network namespace {NetworkNamespace}"));
        try
        {
            return (await Kernel.ReadProcAsync(NetworkNamespace, path).WaitAsync(ct).ConfigureAwait(false)).Trim() == "1";
        }
        catch (IOException ex)
        {
            throw new NetfilterException("SysctlReadFailed", FailureKind.OperationFailed, $"Cannot read {path}: {ex.Message}", path, ex);
        }
    }

    /// <summary>
    /// Switches the family's forwarding sysctl on, written in-process to /proc/sys/net as the namespace sees it
    /// (as it is read: no sysctl process).
    /// </summary>
    public async Task EnableForwardingAsync(IpFamily family, CancellationToken ct)
    {
        var key = ForwardingKey(family);
        var path = "/proc/sys/" + key.Replace('.', '/');
        _log($"Writing 1 to {path}" + (NetworkNamespace is null ? string.Empty : $" in network namespace {NetworkNamespace}"));
        try
        {
            await Kernel.WriteProcAsync(NetworkNamespace, path, "1").WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new NetfilterException("SysctlWriteFailed", FailureKind.OperationFailed, $"Cannot write {path}: {ex.Message} Set {key}=1 (sysctl -w) so that forwarded packets are routed.", path, ex);
        }
    }

    /// <summary>The conntrack table of the namespace (<c>conntrack -L</c>), or null when the tool is not installed.</summary>
    public async Task<string?> ListConntrackAsync(IpFamily family, CancellationToken ct)
    {
        var tool = ExecutableLocator.Find("conntrack");
        if (tool is null)
        {
            return null;
        }

        var result = await RunAsync(Wrap(new ProcessRequest(tool, new[] { "-L", "-f", family == IpFamily.IPv4 ? "ipv4" : "ipv6" })), inNamespace: false, ct).ConfigureAwait(false);
        return result.ExitCode == 0 ? result.StandardOutput : null;
    }


    /// <summary>The namespace's identity, "net:[inode]": differs for a new namespace that reuses a deleted one's name.</summary>
    public Task<string> NamespaceIdAsync() =>
        NamespaceThread.RunAsync(NetworkNamespace, () => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? string.Empty);

    /// <summary>Runs one nft script (<c>nft -f -</c>) in the namespace: one transaction, applied whole or not at all.</summary>
    public async Task ApplyNftScriptAsync(string script, CancellationToken ct)
    {
        var nft = ExecutableLocator.Require("nft", "nftables");
        _log("nft input:\n" + script.TrimEnd('\n'));
        await RunCheckedAsync(new ProcessRequest(nft, new[] { "-f", "-" }, script), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// True when the namespace holds an nftables table that is neither one of iptables' own nor the module's: only
    /// then can another table drop a forward's packets. One in-process netlink dump, no nft process; when the
    /// dump fails the answer is true, so the caller reads the ruleset with nft.
    /// </summary>
    public async Task<bool> HasForeignNftTablesAsync(CancellationToken ct)
    {
        try
        {
            var chains = await Kernel.ListAllChainsAsync(NetworkNamespace).WaitAsync(ct).ConfigureAwait(false);
            return chains.Any(c => !NftJson.NftRuleset.IsIptablesTableName(c.Family, c.Table) && c.Table != NftJson.NftRuleset.ModuleTable);
        }
        catch (NetfilterException ex)
        {
            _log(ex.Message + " Reading the ruleset with nft instead.");
            return true;
        }
    }

    /// <summary>
    /// The whole nftables ruleset of the namespace (<c>nft -j list ruleset</c>), every table of every program, or null
    /// when nft is not installed. A failing nft is an error: a check that silently skipped it would say "no problem".
    /// </summary>
    public async Task<NftJson.NftRuleset?> ListNftRulesetAsync(CancellationToken ct)
    {
        var tool = ExecutableLocator.Find("nft");
        if (tool is null)
        {
            return null;
        }

        var result = await RunCheckedAsync(new ProcessRequest(tool, new[] { "-j", "list", "ruleset" }), ct).ConfigureAwait(false);
        return NftJson.NftJsonParser.Parse(result.StandardOutput);
    }

    /// <summary>
    /// Deletes conntrack entries of the namespace with one <c>conntrack -D</c> (<paramref name="filter"/>: its
    /// options after -D, from <see cref="Engine.ConntrackFilter"/>). Returns how many were deleted, or null when
    /// conntrack(8) is not installed.
    /// </summary>
    /// <exception cref="CommandFailedException">conntrack failed (it exits 1 also when nothing matched: that is 0).</exception>
    public async Task<int?> DeleteConntrackAsync(IReadOnlyList<string> filter, CancellationToken ct)
    {
        var tool = ExecutableLocator.Find("conntrack");
        if (tool is null)
        {
            return null;
        }

        var request = new ProcessRequest(tool, new[] { "-D" }.Concat(filter).ToList());
        var result = await RunAsync(request, inNamespace: true, ct).ConfigureAwait(false);
        var m = ConntrackDeletedRegex().Match(result.StandardError);
        if (m.Success && result.ExitCode is 0 or 1)
        {
            return int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        throw new CommandFailedException(Wrap(request).Display, result.ExitCode, result.StandardError);
    }

    /// <summary>Sets one sysctl inside the namespace.</summary>
    public async Task SetSysctlAsync(string key, string value, CancellationToken ct)
    {
        var sysctl = ExecutableLocator.Require("sysctl", "procps");
        await RunCheckedAsync(new ProcessRequest(sysctl, new[] { "-q", "-w", key + "=" + value }), ct).ConfigureAwait(false);
    }

    public static string ForwardingKey(IpFamily family) =>
        family == IpFamily.IPv4 ? "net.ipv4.ip_forward" : "net.ipv6.conf.all.forwarding";

    /// <summary>Runs a tool inside the namespace and throws on a non-zero exit.</summary>
    public async Task<ProcessResult> RunCheckedAsync(ProcessRequest request, CancellationToken ct)
    {
        var result = await RunAsync(request, inNamespace: true, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new CommandFailedException(Wrap(request).Display, result.ExitCode, result.StandardError);
        }

        return result;
    }

    /// <summary>The one funnel: runs <paramref name="request"/>, inside the namespace when <paramref name="inNamespace"/>, logged for -Verbose.</summary>
    /// <exception cref="NetfilterException">ToolNotInstalled when the program cannot be started.</exception>
    public async Task<ProcessResult> RunAsync(ProcessRequest request, bool inNamespace, CancellationToken ct)
    {
        var actual = inNamespace ? Wrap(request) : request;
        _log("Running: " + actual.Display);
        try
        {
            return await _runner.RunAsync(actual, ct).ConfigureAwait(false);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new NetfilterException("ToolNotInstalled", FailureKind.NotInstalled, $"Cannot start '{actual.Program}': {ex.Message}", actual.Program, ex);
        }
    }

    /// <summary>
    /// Wraps a request in <c>nsenter --net=/run/netns/NAME --</c> when a namespace is set: the tool runs in the
    /// namespace <c>ip netns add</c> made. Unlike <c>ip netns exec</c> it does not also set up a mount namespace
    /// with that namespace's /sys and /etc/netns files, which the iptables tools do not read; that saves about
    /// 0.4-1.5 ms a process (measured in docs/PERFORMANCE.md).
    /// </summary>
    public ProcessRequest Wrap(ProcessRequest request)
    {
        if (NetworkNamespace is null)
        {
            return request;
        }

        var nsenter = ExecutableLocator.Require("nsenter", "util-linux");
        var args = new List<string> { "--net=" + Path.Combine(SystemChecks.NetnsDirectory, NetworkNamespace), "--", request.Program };
        args.AddRange(request.Arguments);
        return new ProcessRequest(nsenter, args, request.StandardInput) { InputWriter = request.InputWriter };
    }

    [GeneratedRegex(@"(\d+) flow entries have been deleted")]
    private static partial Regex ConntrackDeletedRegex();

}
