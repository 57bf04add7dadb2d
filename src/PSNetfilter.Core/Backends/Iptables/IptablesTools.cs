using System.Text.RegularExpressions;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// The iptables tools of one namespace: which backend they use (nf_tables or legacy, detected once per process),
/// iptables-save, and iptables-restore (whole payloads, prepared processes, one process per table). Every
/// process goes through the host's funnel (<see cref="NetfilterHost.RunAsync"/>), which enters the namespace.
/// </summary>
public sealed partial class IptablesTools
{
    private readonly NetfilterHost _host;
    private readonly IptablesToolset? _fixed;

    /// <param name="toolset">A fixed toolset (tests); otherwise detected once per process.</param>
    public IptablesTools(NetfilterHost host, IptablesToolset? toolset = null)
    {
        _host = host;
        _fixed = toolset;
    }

    private static readonly SemaphoreSlim BackendGate = new(1, 1);
    private static IptablesToolset? _cachedBackend;

    /// <summary>
    /// True when <paramref name="family"/> holds no module chain, told by one in-process netlink dump of its
    /// nf_tables chain names instead of an iptables-save process: a change that does not touch the family then
    /// need not read its rules. False when it holds one, or when that cannot be told this way (the
    /// iptables-legacy backend, or the query failed): then the family is read as always.
    /// </summary>
    public async Task<bool> HoldsNoModuleChainsAsync(IpFamily family, CancellationToken ct)
    {
        var backend = await GetToolsetAsync(ct).ConfigureAwait(false);
        if (backend.Kind != IptablesBackendKind.Nft)
        {
            return false;
        }

        var save = Path.GetFileName(family == IpFamily.IPv4 ? backend.Save4 : backend.Save6);
        try
        {
            var chains = await _host.Kernel.ListChainsAsync(_host.NetworkNamespace, family).WaitAsync(ct).ConfigureAwait(false);
            if (chains.Any(c => RuleLayout.Tables.Contains(c.Table) && c.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)))
            {
                return false;
            }

            _host.Log($"Listed the {family} nf_tables chains in-process (netlink): no {RuleLayout.ChainPrefix} chain, so {save} is not needed.");
            return true;
        }
        catch (NetfilterException ex)
        {
            _host.Log($"{ex.Message} Reading the {family} rules with {save} instead.");
            return false;
        }
    }

    /// <summary>
    /// Detects the backend once per process from <c>iptables -V</c> (the host's alternative), unless
    /// PSNETFILTER_IPTABLES_BACKEND is nft or legacy.
    /// </summary>
    public async Task<IptablesToolset> GetToolsetAsync(CancellationToken ct)
    {
        if (_fixed is not null)
        {
            return _fixed;
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
                _cachedBackend = await DetectToolsetAsync(ct).ConfigureAwait(false);
                _host.Log($"Using {_cachedBackend.Describe()}: {_cachedBackend.Save4}, {_cachedBackend.Restore4}");
            }

            return _cachedBackend;
        }
        finally
        {
            BackendGate.Release();
        }
    }

    private async Task<IptablesToolset> DetectToolsetAsync(CancellationToken ct)
    {
        var iptables = ExecutableLocator.Require("iptables", "iptables");
        var result = await _host.RunAsync(new ProcessRequest(iptables, new[] { "-V" }), inNamespace: false, ct).ConfigureAwait(false);
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
        return new IptablesToolset(kind, version, Tool("iptables", "save"), Tool("iptables", "restore"), Tool("ip6tables", "save"), Tool("ip6tables", "restore"));
    }

    /// <summary>One <c>iptables-save -c</c> (or ip6tables-save) of every table, parsed.</summary>
    public async Task<Ruleset> SaveAsync(IpFamily family, CancellationToken ct)
    {
        var backend = await GetToolsetAsync(ct).ConfigureAwait(false);
        var save = family == IpFamily.IPv4 ? backend.Save4 : backend.Save6;
        var result = await _host.RunCheckedAsync(new ProcessRequest(save, new[] { "-c" }), ct).ConfigureAwait(false);
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
            var backend = await GetToolsetAsync(ct).ConfigureAwait(false);
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
            _host.Log($"{Path.GetFileName(prepared.Program)}: {payload.LineCount} lines for tables {string.Join(" and ", payload.Tables)}, applied as one process per table, at once.");
        }

        var fed = prepared.Feed(payload, (part, what) => _host.Log($"{Path.GetFileName(prepared.Program)} payload ({what}):\n{part.Text.TrimEnd()}"));
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
            errors.Add(new CommandFailedException(_host.Wrap(request).Display, result.ExitCode, result.StandardError, line, input, owner));
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
        var backend = await GetToolsetAsync(ct).ConfigureAwait(false);
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
            slots.Add(new PreparedRestore.Slot(table, input, request, _host.RunAsync(request, inNamespace: true, CancellationToken.None)));
        }

        return new PreparedRestore(family, restore, perTable, slots, _host.Log);
    }

    /// <summary>
    /// How many rules the other backend (iptables-legacy when the module uses nft, and the reverse) holds
    /// for <paramref name="family"/>; 0 when its tools are not installed.
    /// </summary>
    public async Task<(string Name, int Rules)> CountOtherBackendRulesAsync(IpFamily family, CancellationToken ct)
    {
        var backend = await GetToolsetAsync(ct).ConfigureAwait(false);
        var other = backend.Kind == IptablesBackendKind.Nft ? "legacy" : "nft";
        var tool = ExecutableLocator.Find($"{(family == IpFamily.IPv4 ? "iptables" : "ip6tables")}-{other}-save");
        if (tool is null)
        {
            return ("iptables-" + other, 0);
        }

        var result = await _host.RunAsync(_host.Wrap(new ProcessRequest(tool, Array.Empty<string>())), inNamespace: false, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            return ("iptables-" + other, 0);
        }

        var rules = IptablesSaveParser.Parse(result.StandardOutput, family).Tables.Sum(t => t.Rules.Count);
        return ("iptables-" + other, rules);
    }

    [GeneratedRegex(@"v(\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex VersionRegex();

    // legacy: "Error occurred at line: 7"; nft: "line 7 failed" or "line 7: RULE_APPEND failed (...)". The first
    // match is the line that failed: nft lists every later line of the batch as failed too.
    [GeneratedRegex(@"(?:Error occurred at line: (\d+))|(?:line (\d+)(?::[^\n]*?)? failed)")]
    private static partial Regex FailedLineRegex();
}
