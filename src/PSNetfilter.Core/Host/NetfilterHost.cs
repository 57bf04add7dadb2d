using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Core.Host;

/// <summary>
/// The kernel side of one network namespace (or the host's own): every process the module runs goes through
/// here and through <see cref="IProcessRunner"/>. It enters a named namespace with <c>nsenter --net</c>,
/// passes <c>-w</c> to iptables-restore, and logs each command line and payload for -Verbose.
/// </summary>
public sealed partial class NetfilterHost
{
    private static readonly SemaphoreSlim BackendGate = new(1, 1);
    private static IptablesBackend? _cachedBackend;

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

    /// <summary>Skip the root and namespace checks (unit tests with a fake runner).</summary>
    public bool SkipSystemChecks { get; init; }

    /// <summary>A fixed backend (tests); otherwise detected once per process.</summary>
    public IptablesBackend? Backend { get; init; }

    /// <summary>Where the per-namespace locks live.</summary>
    public string LockDirectory { get; init; } = NamespaceLock.DefaultDirectory;

    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Reads a /proc file as the namespace sees it (tests swap in a fake).</summary>
    public Func<string?, string, Task<string>> ProcReader { get; init; } = NamespaceThread.ReadFileAsync;

    /// <summary>Writes a /proc file as the namespace sees it (tests swap in a fake).</summary>
    public Func<string?, string, string, Task> ProcWriter { get; init; } = NamespaceThread.WriteFileAsync;

    /// <summary>Lists a family's nf_tables chains in the namespace, in-process (tests swap in a fake).</summary>
    public Func<string?, IpFamily, Task<IReadOnlyList<(string Table, string Chain)>>> ChainLister { get; init; } = NftChains.ListAsync;

    /// <summary>Lists the chains of every nf_tables family (in-process netlink by default; replaced in unit tests).</summary>
    public Func<string?, Task<IReadOnlyList<(string Family, string Table, string Chain)>>> AllChainLister { get; init; } = NftChains.ListAllAsync;

    /// <summary>
    /// True when <paramref name="family"/> holds no module chain, told by one in-process netlink dump of its
    /// nf_tables chain names instead of an iptables-save process: a change that does not touch the family then
    /// need not read its rules. False when it holds one, or when that cannot be told this way (the
    /// iptables-legacy backend, or the query failed): then the family is read as always.
    /// </summary>
    public async Task<bool> HoldsNoModuleChainsAsync(IpFamily family, CancellationToken ct)
    {
        var backend = await GetBackendAsync(ct).ConfigureAwait(false);
        if (backend.Kind != IptablesBackendKind.Nft)
        {
            return false;
        }

        var save = Path.GetFileName(family == IpFamily.IPv4 ? backend.Save4 : backend.Save6);
        try
        {
            var chains = await ChainLister(NetworkNamespace, family).WaitAsync(ct).ConfigureAwait(false);
            if (chains.Any(c => RuleLayout.Tables.Contains(c.Table) && c.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)))
            {
                return false;
            }

            _log($"Listed the {family} nf_tables chains in-process (netlink): no {RuleLayout.ChainPrefix} chain, so {save} is not needed.");
            return true;
        }
        catch (NetfilterException ex)
        {
            _log($"{ex.Message} Reading the {family} rules with {save} instead.");
            return false;
        }
    }

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
    /// Detects the backend once per process from <c>iptables -V</c> (the host's alternative), unless
    /// PSNETFILTER_IPTABLES_BACKEND is nft or legacy.
    /// </summary>
    public async Task<IptablesBackend> GetBackendAsync(CancellationToken ct)
    {
        if (Backend is not null)
        {
            return Backend;
        }

        if (_cachedBackend is not null)
        {
            return _cachedBackend;
        }

        await BackendGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_cachedBackend is null)
            {
                _cachedBackend = await DetectBackendAsync(ct).ConfigureAwait(false);
                _log($"Using {_cachedBackend.Describe()}: {_cachedBackend.Save4}, {_cachedBackend.Restore4}");
            }

            return _cachedBackend;
        }
        finally
        {
            BackendGate.Release();
        }
    }

    private async Task<IptablesBackend> DetectBackendAsync(CancellationToken ct)
    {
        var iptables = ExecutableLocator.Require("iptables", "iptables");
        var result = await RunRawAsync(new ProcessRequest(iptables, new[] { "-V" }), inNamespace: false, ct).ConfigureAwait(false);
        var text = result.StandardOutput + result.StandardError;
        var m = VersionRegex().Match(text);
        var version = m.Success ? m.Groups[1].Value : "unknown";
        var forced = Environment.GetEnvironmentVariable("PSNETFILTER_IPTABLES_BACKEND")?.Trim().ToLowerInvariant();
        var kind = forced switch
        {
            "nft" => IptablesBackendKind.Nft,
            "legacy" => IptablesBackendKind.Legacy,
            _ => text.Contains("legacy", StringComparison.Ordinal) ? IptablesBackendKind.Legacy : IptablesBackendKind.Nft,
        };
        var suffix = kind == IptablesBackendKind.Nft ? "-nft" : "-legacy";
        string Tool(string family, string verb) =>
            ExecutableLocator.Find($"{family}{suffix}-{verb}") ?? ExecutableLocator.Require($"{family}-{verb}", "iptables");
        return new IptablesBackend(kind, version, Tool("iptables", "save"), Tool("iptables", "restore"), Tool("ip6tables", "save"), Tool("ip6tables", "restore"));
    }

    /// <summary>One <c>iptables-save -c</c> (or ip6tables-save) of every table, parsed.</summary>
    public async Task<Ruleset> SaveAsync(IpFamily family, CancellationToken ct)
    {
        var backend = await GetBackendAsync(ct).ConfigureAwait(false);
        var save = family == IpFamily.IPv4 ? backend.Save4 : backend.Save6;
        var result = await RunCheckedAsync(new ProcessRequest(save, new[] { "-c" }), ct).ConfigureAwait(false);
        return IptablesSaveParser.Parse(result.StandardOutput, family);
    }

    /// <summary>
    /// From this many lines on, a payload with rules for more than one table is applied as one
    /// iptables-restore per table, run at the same time (about 30 forwards). For one forward two processes were
    /// no faster than one, and a small change stays one process and one place to read in -Verbose.
    /// </summary>
    public const int ConcurrentTablesFromLines = 100;

    /// <summary>Whether a payload of <paramref name="lines"/> lines over <paramref name="tables"/> tables gets one process per table.</summary>
    public static bool OneProcessPerTable(int lines, int tables) => tables >= 2 && lines >= ConcurrentTablesFromLines;

    /// <summary>
    /// Applies a payload with <c>iptables-restore -w --noflush</c>. iptables-restore commits each table as one
    /// kernel transaction; a large payload gets one process per table, run at once, so that one table's
    /// parsing overlaps the other's. Once started they are not cancelled, so a stopped pipeline never leaves a
    /// transaction half-sent.
    /// </summary>
    /// <param name="prepared">
    /// Processes started ahead by <see cref="PrepareRestoreAsync"/> for this family: the payload goes to them (in
    /// their shape: one process, or one per table) instead of to new ones.
    /// </param>
    /// <exception cref="CommandFailedException">
    /// With the payload line the tool named and the forward that wrote it; for one process per table, also
    /// whether some of the payload may have been applied.
    /// </exception>
    public async Task RestoreAsync(RestorePayload payload, CancellationToken ct, PreparedRestore? prepared = null)
    {
        if (payload.IsEmpty)
        {
            if (prepared is not null)
            {
                await prepared.ReleaseAsync().ConfigureAwait(false);
            }

            return;
        }

        if (prepared is null)
        {
            var backend = await GetBackendAsync(ct).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            var perTable = OneProcessPerTable(payload.LineCount, payload.Tables.Count);
            prepared = StartRestore(payload.Family == IpFamily.IPv4 ? backend.Restore4 : backend.Restore6, payload.Family, perTable);
        }
        else if (prepared.Family != payload.Family)
        {
            await prepared.ReleaseAsync().ConfigureAwait(false);
            throw new ArgumentException("A prepared restore of another family.", nameof(prepared));
        }
        else if (ct.IsCancellationRequested)
        {
            await prepared.ReleaseAsync().ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }

        if (prepared.PerTable)
        {
            _log($"{Path.GetFileName(prepared.Program)}: {payload.LineCount} lines for tables {string.Join(" and ", payload.Tables)}, applied as one process per table, at once.");
        }

        var fed = prepared.Feed(payload, (part, what) => _log($"{Path.GetFileName(prepared.Program)} payload ({what}):\n{part.Text.TrimEnd()}"));
        var errors = new List<CommandFailedException>();
        var succeeded = 0;
        foreach (var (part, request, run) in fed)
        {
            var result = await run.ConfigureAwait(false);
            if (result.ExitCode == 0)
            {
                succeeded += part is null ? 0 : 1;
                continue;
            }

            var m = FailedLineRegex().Match(result.StandardError);
            int? line = m.Success
                ? int.Parse(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)
                : null;
            var (owner, input) = line is null || part is null ? (null, null) : part.Locate(line.Value);
            errors.Add(new CommandFailedException(Wrap(request).Display, result.ExitCode, result.StandardError, line, input, owner));
        }

        if (errors.Count == 0)
        {
            return;
        }

        var first = errors[0];
        if (!prepared.PerTable)
        {
            throw first;
        }

        throw new CommandFailedException(first.Command, first.ExitCode, first.StandardError, first.FailedLine, first.FailedInput, first.Target)
        {
            // Another table's process committed, or the failing one may have committed before it failed.
            PartlyApplied = succeeded > 0 || errors.Any(e => e.FailedLine is null),
        };
    }

    /// <summary>
    /// Starts the iptables-restore process(es) of a change before the change is planned, so that their start-up
    /// overlaps the reads and the planning. They wait for their input; <see cref="RestoreAsync"/> feeds them, and
    /// <see cref="PreparedRestore.ReleaseAsync"/> closes them with no input (iptables-restore then applies
    /// nothing). <paramref name="perTable"/>: one process per table (nat, filter) instead of one.
    /// </summary>
    public async Task<PreparedRestore> PrepareRestoreAsync(IpFamily family, bool perTable, CancellationToken ct)
    {
        var backend = await GetBackendAsync(ct).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        return StartRestore(family == IpFamily.IPv4 ? backend.Restore4 : backend.Restore6, family, perTable);
    }

    private PreparedRestore StartRestore(string restore, IpFamily family, bool perTable)
    {
        var slots = new List<PreparedRestore.Slot>();
        foreach (var table in perTable ? RuleLayout.Tables.Select(t => (string?)t) : new string?[] { null })
        {
            var input = new PreparedRestore.Input();
            var request = new ProcessRequest(restore, new[] { "-w", "--noflush" }) { InputWriter = input.WriteToAsync };
            slots.Add(new PreparedRestore.Slot(table, input, request, RunRawAsync(request, inNamespace: true, CancellationToken.None)));
        }

        return new PreparedRestore(family, restore, perTable, slots, _log);
    }

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
    public async Task<Diagnostics.GatewayInventory> GetInventoryAsync(CancellationToken ct)
    {
        var args = new[] { "-j", "addr", "show" };
        var result = await RunIpAsync(args, null, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new CommandFailedException(IpDisplay(args), result.ExitCode, result.StandardError);
        }

        return Diagnostics.GatewayInventory.Parse(result.StandardOutput);
    }

    private async Task<ProcessResult> RunIpAsync(IEnumerable<string> arguments, string? input, CancellationToken ct) =>
        await RunRawAsync(IpRequest(arguments, input), inNamespace: false, ct).ConfigureAwait(false);

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
            return (await ProcReader(NetworkNamespace, path).WaitAsync(ct).ConfigureAwait(false)).Trim() == "1";
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
            await ProcWriter(NetworkNamespace, path, "1").WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new NetfilterException("SysctlWriteFailed", FailureKind.OperationFailed, $"Cannot write {path}: {ex.Message} Set {key}=1 (sysctl -w) so that forwarded packets are routed.", path, ex);
        }
    }

    /// <summary>
    /// How many rules the other backend (iptables-legacy when the module uses nft, and the reverse) holds
    /// for <paramref name="family"/>; 0 when its tools are not installed.
    /// </summary>
    public async Task<(string Name, int Rules)> CountOtherBackendRulesAsync(IpFamily family, CancellationToken ct)
    {
        var backend = await GetBackendAsync(ct).ConfigureAwait(false);
        var other = backend.Kind == IptablesBackendKind.Nft ? "legacy" : "nft";
        var tool = ExecutableLocator.Find($"{(family == IpFamily.IPv4 ? "iptables" : "ip6tables")}-{other}-save");
        if (tool is null)
        {
            return ("iptables-" + other, 0);
        }

        var result = await RunRawAsync(Wrap(new ProcessRequest(tool, Array.Empty<string>())), inNamespace: false, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            return ("iptables-" + other, 0);
        }

        var rules = IptablesSaveParser.Parse(result.StandardOutput, family).Tables.Sum(t => t.Rules.Count);
        return ("iptables-" + other, rules);
    }

    /// <summary>The conntrack table of the namespace (<c>conntrack -L</c>), or null when the tool is not installed.</summary>
    public async Task<string?> ListConntrackAsync(IpFamily family, CancellationToken ct)
    {
        var tool = ExecutableLocator.Find("conntrack");
        if (tool is null)
        {
            return null;
        }

        var result = await RunRawAsync(Wrap(new ProcessRequest(tool, new[] { "-L", "-f", family == IpFamily.IPv4 ? "ipv4" : "ipv6" })), inNamespace: false, ct).ConfigureAwait(false);
        return result.ExitCode == 0 ? result.StandardOutput : null;
    }

    /// <summary>The record of what the module created in this namespace (see <see cref="Engine.IntentRecord"/>).</summary>
    public string IntentPath => Engine.IntentRecord.PathFor(LockDirectory, NetworkNamespace);

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
            var chains = await AllChainLister(NetworkNamespace).WaitAsync(ct).ConfigureAwait(false);
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
        var result = await RunRawAsync(request, inNamespace: true, ct).ConfigureAwait(false);
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
        var result = await RunRawAsync(request, inNamespace: true, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new CommandFailedException(Wrap(request).Display, result.ExitCode, result.StandardError);
        }

        return result;
    }

    private async Task<ProcessResult> RunRawAsync(ProcessRequest request, bool inNamespace, CancellationToken ct)
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

    [GeneratedRegex(@"v(\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionRegex();

    // legacy: "Error occurred at line: 7"; nft: "line 7 failed" or "line 7: RULE_APPEND failed (...)". The first
    // match is the line that failed: nft lists every later line of the batch as failed too.
    [GeneratedRegex(@"(?:Error occurred at line: (\d+))|(?:line (\d+)(?::[^\n]*?)? failed)")]
    private static partial Regex FailedLineRegex();
}
