using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Forwards as iptables rules: tagged rules in PSNF- chains of nat and filter (<see cref="RuleLayout"/>), read
/// with iptables-save (<see cref="ForwardReader"/>) and changed with iptables-restore --noflush
/// (<see cref="ChangePlanner"/>, <see cref="IptablesChange"/>), one process per family, or one per table for a
/// large change. The boot file is a POSIX sh script (<see cref="RestoreScriptGenerator"/>).
/// </summary>
public sealed class IptablesNetfilterBackend : INetfilterBackend
{
    /// <summary>The rules a plain forward writes (DNAT, SNAT, FORWARD accept): to size a change before it is planned.</summary>
    internal const int RulesPerForward = 3;

    /// <summary>
    /// From this many forwards on a change streams: the size from which a payload is applied one process per
    /// table anyway.
    /// </summary>
    public const int StreamFrom = (IptablesTools.ConcurrentTablesFromLines + RulesPerForward - 1) / RulesPerForward;

    private static readonly IpFamily[] Families = { IpFamily.IPv4, IpFamily.IPv6 };

    private readonly NetfilterHost _host;

    /// <param name="toolset">A fixed toolset (tests); otherwise detected once per process.</param>
    public IptablesNetfilterBackend(NetfilterHost host, IptablesToolset? toolset = null)
    {
        _host = host;
        Tools = new IptablesTools(host, toolset);
    }

    public string Name => "iptables";

    public int StreamFromForwards => StreamFrom;

    public string StreamTarget => "iptables-restore";

    public IptablesTools Tools { get; }

    public async Task<BackendSnapshot> ReadAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct) =>
        await ReadSnapshotAsync(needed, options, ct).ConfigureAwait(false);

    public async Task<bool> CanStreamAsync(CancellationToken ct) =>
        (await Tools.GetToolsetAsync(ct).ConfigureAwait(false)).Kind == IptablesBackendKind.Nft;

    /// <summary>
    /// Reads the families the change needs and starts, alongside the reads, the iptables-restore of each family
    /// of <paramref name="adding"/>: they wait for their payload. One process per table when the forwards alone
    /// make <see cref="IptablesTools.ConcurrentTablesFromLines"/> lines or more, or when the change streams.
    /// </summary>
    public async Task<IBackendChange> OpenChangeAsync(IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, ReadOptions options, CancellationToken ct)
    {
        var prepared = new Dictionary<IpFamily, Task<PreparedRestore>>();
        try
        {
            // An add reads the families it adds to, and the others only if they hold module chains.
            var read = ReadSnapshotAsync(adding is null ? Families : adding.Select(d => d.Family).Distinct().ToList(), options, ct);
            foreach (var group in (adding ?? Array.Empty<PortForwardDefinition>()).GroupBy(d => d.Family))
            {
                // Sized before it is planned: every forward writes rules to both tables.
                var perTable = stream || IptablesTools.OneProcessPerTable(group.Count() * RulesPerForward, RuleLayout.Tables.Count);
                prepared[group.Key] = Tools.PrepareRestoreAsync(group.Key, perTable, ct);
            }

            var change = new IptablesChange(this, await read.ConfigureAwait(false), options, prepared, stream);
            if (stream)
            {
                foreach (var task in prepared.Values)
                {
                    await task.ConfigureAwait(false); // started: the change writes to them from now on
                }
            }

            return change;
        }
        catch
        {
            IptablesChange.Close(prepared.Values);
            throw;
        }
    }

    public async Task<IReadOnlyList<PortForwardFinding>> CheckAsync(BackendSnapshot snapshot, IReadOnlyList<PortForward> forwards, CancellationToken ct)
    {
        var rulesets = ((IptablesSnapshot)snapshot).Rulesets;
        var findings = new List<PortForwardFinding>();
        foreach (var family in forwards.Select(f => f.Family).Distinct())
        {
            if (rulesets.TryGetValue(family, out var ruleset) && ForwardJumpCheck.Evaluate(ruleset) is { } jump)
            {
                findings.Add(jump);
            }

            var (otherName, other) = await Tools.CountOtherBackendRulesAsync(family, ct).ConfigureAwait(false);
            if (BothBackendsCheck.Evaluate(family, otherName, other) is { } both)
            {
                findings.Add(both);
            }
        }

        foreach (var f in forwards)
        {
            findings.AddRange(ForwardPolicyDropCheck.Evaluate(f, rulesets[f.Family]));
            findings.AddRange(ForeignDnatCheck.Evaluate(f, rulesets[f.Family]));
        }

        return findings;
    }

    internal async Task<IptablesSnapshot> ReadSnapshotAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct)
    {
        var read = await Task.WhenAll(Families.Select(f => needed.Contains(f) ? ReadFamilyAsync(f, options, ct) : ReadFamilyIfOwnedAsync(f, options, ct))).ConfigureAwait(false);
        return new IptablesSnapshot
        {
            Rulesets = read.ToDictionary(r => r.Ruleset.Family, r => r.Ruleset),
            States = read.ToDictionary(r => r.Ruleset.Family, r => r.State),
        };
    }

    /// <summary>One save of one family, rebuilt into forwards; the reader's warnings go to <paramref name="options"/>.</summary>
    internal async Task<(Ruleset Ruleset, OwnedState State)> ReadFamilyAsync(IpFamily family, ReadOptions options, CancellationToken ct)
    {
        var ruleset = await Tools.SaveAsync(family, ct).ConfigureAwait(false);
        var state = ForwardReader.Read(ruleset, _host.NetworkNamespace, options.IsPersisted);
        foreach (var w in state.Warnings)
        {
            options.Warning(w);
        }

        return (ruleset, state);
    }

    /// <summary>The family read as <see cref="ReadFamilyAsync"/>, or empty when it holds no module chain (no save then).</summary>
    private async Task<(Ruleset Ruleset, OwnedState State)> ReadFamilyIfOwnedAsync(IpFamily family, ReadOptions options, CancellationToken ct)
    {
        if (!await Tools.HoldsNoModuleChainsAsync(family, ct).ConfigureAwait(false))
        {
            return await ReadFamilyAsync(family, options, ct).ConfigureAwait(false);
        }

        var empty = new Ruleset(family);
        return (empty, ForwardReader.Read(empty, _host.NetworkNamespace, options.IsPersisted));
    }
}
