using System.Net;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Engine;

/// <summary>What happened to one forward.</summary>
public enum ChangeKind
{
    Created,
    Replaced,
    Unchanged,
    Removed,
}

/// <summary>The outcome for one forward; <see cref="Changed"/> tells automation (Ansible) whether anything was applied.</summary>
public sealed record ChangeResult(PortForward Forward, ChangeKind Kind)
{
    public bool Changed => Kind != ChangeKind.Unchanged;
}

/// <summary>The cmdlet side of a change: confirmation, per-item errors, and messages.</summary>
public interface IChangeObserver
{
    /// <summary>ShouldProcess: false skips the item (WhatIf, or the user said no).</summary>
    bool ShouldProcess(string target, string action);

    /// <summary>One item failed; the others go on.</summary>
    void Failed(NetfilterException error);

    void Verbose(string message);

    void Warning(string message);

    /// <summary>The plan, item by item (-Debug).</summary>
    void Debug(string message)
    {
    }
}

/// <summary>An observer for read-only callers with nowhere to write (tab completion): says no, writes nothing.</summary>
public sealed class SilentObserver : IChangeObserver
{
    public static readonly SilentObserver Instance = new();

    public bool ShouldProcess(string target, string action) => false;

    public void Failed(NetfilterException error)
    {
    }

    public void Verbose(string message)
    {
    }

    public void Warning(string message)
    {
    }
}

/// <summary>One planned change: create (New only), replace (both) or remove (Old only).</summary>
public sealed record PendingChange(PortForwardDefinition? New, PortForward? Old);

/// <summary>A change in progress: holds the namespace lock and the snapshot it was planned on.</summary>
public sealed class ChangeSession : IDisposable
{
    private readonly IDisposable _lock;

    internal ChangeSession(IDisposable gate, ForwardSnapshot snapshot)
    {
        _lock = gate;
        Snapshot = snapshot;
    }

    public ForwardSnapshot Snapshot { get; }

    public List<PendingChange> Pending { get; } = new();

    /// <summary>Recorded forwards with no rules left in the kernel that a removal drops from the record.</summary>
    public List<PortForward> Forgotten { get; } = new();

    internal Dictionary<string, PortForwardDefinition> Batch { get; } = new(PortForwardNames.Comparer);

    /// <summary>The snapshot's forwards by name, for <see cref="PortForwardManager.PlanAdds"/>.</summary>
    internal Dictionary<string, List<PortForward>>? ByName { get; set; }

    /// <summary>The external endpoints of the snapshot and of the forwards accepted so far.</summary>
    internal PortForwardManager.EndpointIndex? Endpoints { get; set; }

    internal List<ChangeResult> Unchanged { get; } = new();

    /// <summary>Forwarding sysctls read while the rulesets were read (null: not read or failed).</summary>
    internal IReadOnlyDictionary<IpFamily, Task<bool?>> Forwarding { get; init; } = new Dictionary<IpFamily, Task<bool?>>();

    /// <summary>iptables-restore processes started while the rulesets were read, by family; taken by the commit.</summary>
    internal Dictionary<IpFamily, Task<PreparedRestore>> Prepared { get; } = new();

    /// <summary>
    /// A streamed change: every accepted forward's lines are planned at once (one builder per family) and
    /// written to that family's prepared restore processes (one per table) while the pipeline still runs.
    /// Null: the change is planned and applied at the commit.
    /// </summary>
    internal Dictionary<IpFamily, ChangePlanBuilder>? Stream { get; set; }

    /// <summary>Records an accepted change; a streamed change plans it now.</summary>
    internal void Accept(PendingChange change)
    {
        Pending.Add(change);
        if (Stream is null)
        {
            return;
        }

        if (change.Old is { } old)
        {
            BuilderFor(old.Family).Remove(old);
        }

        if (change.New is { } add)
        {
            BuilderFor(add.Family).Add(add);
        }
    }

    /// <summary>Writes the lines planned since the last call to the running restores (a streamed change).</summary>
    internal void WriteStream()
    {
        if (Stream is null)
        {
            return;
        }

        foreach (var (family, builder) in Stream)
        {
            // Started (and awaited) when the streamed change was opened; a family that came later has none.
            if (Prepared.TryGetValue(family, out var restore) && restore.IsCompletedSuccessfully)
            {
                restore.Result.WriteNew(builder.Payload);
            }
        }
    }

    /// <summary>The streamed plan of <paramref name="family"/>, once (a retry plans afresh).</summary>
    internal ChangePlanBuilder? TakeBuilder(IpFamily family) =>
        Stream is not null && Stream.Remove(family, out var builder) ? builder : null;

    private ChangePlanBuilder BuilderFor(IpFamily family)
    {
        if (!Stream!.TryGetValue(family, out var builder))
        {
            Stream[family] = builder = new ChangePlanBuilder(Snapshot.Rulesets[family], Snapshot.States[family]);
        }

        return builder;
    }

    /// <summary>The prepared restore of <paramref name="family"/>, once (a retry starts its own).</summary>
    internal async Task<PreparedRestore?> TakePreparedAsync(IpFamily family)
    {
        if (!Prepared.Remove(family, out var task))
        {
            return null;
        }

        try
        {
            return await task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            return null; // could not start it: the restore starts its own, and reports why if that fails too
        }
    }

    /// <summary>Closes prepared restores that got no payload (they apply nothing), then releases the lock.</summary>
    public void Dispose()
    {
        try
        {
            var open = Prepared.Values.ToList();
            Prepared.Clear();
            foreach (var task in open)
            {
                if (task.Wait(TimeSpan.FromSeconds(30)))
                {
                    task.Result.ReleaseAsync().Wait(TimeSpan.FromSeconds(30));
                }
            }
        }
        catch (AggregateException)
        {
            // A restore that could not start has nothing to close.
        }
        finally
        {
            _lock.Dispose();
        }
    }
}

/// <summary>A snapshot of one namespace: both families' rulesets and the forwards rebuilt from them.</summary>
public sealed class ForwardSnapshot
{
    public required IReadOnlyDictionary<IpFamily, Ruleset> Rulesets { get; init; }

    public required IReadOnlyDictionary<IpFamily, OwnedState> States { get; init; }

    public IEnumerable<PortForward> Forwards => States.Values.SelectMany(s => s.Forwards);
}

/// <summary>
/// read -> plan -> apply for one namespace. Reads the live ruleset once per family, decides per item, asks
/// the observer before each change, and applies the whole batch as one iptables-restore per family, under
/// the namespace lock. A forward the kernel refuses is reported and dropped, and the rest applied again.
/// </summary>
public sealed class PortForwardManager
{
    private static readonly IpFamily[] Families = { IpFamily.IPv4, IpFamily.IPv6 };

    private readonly NetfilterHost _host;
    private readonly IChangeObserver _observer;
    private readonly Dictionary<IPAddress, (IPAddress? Source, string? Device)> _routes = new();
    private Diagnostics.GatewayInventory? _inventory;
    private NetfilterException? _inventoryError;

    public PortForwardManager(NetfilterHost host, IChangeObserver observer)
    {
        _host = host;
        _observer = observer;
    }

    /// <summary>Set to mark forwards that are in a saved boot set (persistence).</summary>
    public Func<string, bool>? IsPersisted { get; init; }

    /// <summary>Where the record of intent of this namespace is kept.</summary>
    public string IntentPath => _host.IntentPath;

    /// <summary>The boot sets installed on this machine: Test-PortForward reports their forwards the kernel lacks.</summary>
    public IReadOnlyList<Persistence.BootSetInfo> PersistedUnits { get; init; } = Array.Empty<Persistence.BootSetInfo>();

    public Task<ForwardSnapshot> ReadAsync(CancellationToken ct) => ReadAsync(ct, Families);

    /// <summary>
    /// Reads the families in <paramref name="needed"/>, and each other family only when it holds module chains:
    /// one without any has no forwards, so an add to another family needs nothing from it (a name clash across
    /// families needs a forward there, and so module chains).
    /// </summary>
    private async Task<ForwardSnapshot> ReadAsync(CancellationToken ct, IReadOnlyCollection<IpFamily> needed)
    {
        _host.EnsureUsable();
        var read = await Task.WhenAll(Families.Select(f => needed.Contains(f) ? ReadFamilyAsync(f, ct) : ReadFamilyIfOwnedAsync(f, ct))).ConfigureAwait(false);
        return new ForwardSnapshot
        {
            Rulesets = read.ToDictionary(r => r.Ruleset.Family, r => r.Ruleset),
            States = read.ToDictionary(r => r.Ruleset.Family, r => r.State),
        };
    }

    public async Task<IReadOnlyList<PortForward>> GetAsync(CancellationToken ct) =>
        (await ReadAsync(ct).ConfigureAwait(false)).Forwards.OrderBy(f => f.Name, StringComparer.Ordinal).ToList();

    /// <summary>
    /// Gathers what Test-PortForward checks (ruleset, sysctls, the other backend, a TCP connect to each
    /// internal endpoint from inside the namespace, unreplied conntrack entries) and evaluates it.
    /// </summary>
    /// <returns>The findings, and the names of all forwards in the namespace (to report literal names that match none).</returns>
    public async Task<(IReadOnlyList<Diagnostics.PortForwardFinding> Findings, IReadOnlySet<string> Names)> DiagnoseAsync(IReadOnlyList<NameSelector> selectors, bool connect, CancellationToken ct)
    {
        var snapshot = await ReadAsync(ct).ConfigureAwait(false);
        var forwards = snapshot.Forwards.Where(f => selectors.Any(s => s.Matches(f.Name))).OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        var families = forwards.Select(f => f.Family).Distinct().ToList();
        var forwarding = new Dictionary<IpFamily, bool>();
        var other = new Dictionary<IpFamily, int>();
        var otherName = "iptables-legacy";
        var conntrack = new Dictionary<IpFamily, string?>();
        foreach (var family in families)
        {
            forwarding[family] = await _host.IsForwardingEnabledAsync(family, ct).ConfigureAwait(false);
            (otherName, other[family]) = await _host.CountOtherBackendRulesAsync(family, ct).ConfigureAwait(false);
            conntrack[family] = await _host.ListConntrackAsync(family, ct).ConfigureAwait(false);
        }

        var gateway = forwards.Count > 0
            ? await InventoryAsync("the forwards were not checked against them", ct).ConfigureAwait(false)
            : null;

        var reachable = new Dictionary<string, bool>(StringComparer.Ordinal);
        if (connect)
        {
            var probes = forwards.Where(f => f.Protocol == Protocol.Tcp)
                .Select(async f => (f.Name, Ok: await NamespaceThread.CanConnectAsync(_host.NetworkNamespace, new IPEndPoint(f.InternalAddress, f.InternalPort), TimeSpan.FromSeconds(2)).ConfigureAwait(false)))
                .ToList();
            foreach (var (name, ok) in await Task.WhenAll(probes).ConfigureAwait(false))
            {
                reachable[name] = ok;
            }
        }

        var nftables = forwards.Count == 0 ? null : await _host.ListNftRulesetAsync(ct).ConfigureAwait(false);
        var routeDevices = nftables is not null && nftables.Tables.Any(nftables.IsForeign)
            ? await RouteDevicesAsync(forwards, ct).ConfigureAwait(false)
            : new Dictionary<IPAddress, string>();

        var unreplied = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var f in forwards.Where(f => f.SnatMode == SnatMode.None))
        {
            if (conntrack.TryGetValue(f.Family, out var table) && table is not null)
            {
                unreplied[f.Name] = Diagnostics.ConntrackReader.CountUnreplied(table, f);
            }
        }

        var findings = Diagnostics.PortForwardDiagnostics.Evaluate(new Diagnostics.DiagnosticsInput
        {
            Snapshot = snapshot,
            Forwards = forwards,
            ForwardingEnabled = forwarding,
            OtherBackendRules = other,
            OtherBackendName = otherName,
            Reachable = reachable,
            Unreplied = unreplied,
            Nftables = nftables,
            RouteDevices = routeDevices,
            Gateway = gateway,
        }).Select(x => x with { NetworkNamespace = _host.NetworkNamespace }).ToList();

        // What the module created or persisted and the kernel no longer has (a flush, a manager's reload).
        var missing = (await MissingAsync(snapshot.Forwards).ConfigureAwait(false)).Where(f => selectors.Any(s => s.Matches(f.Name))).ToList();
        findings.AddRange(missing.Select(f => Diagnostics.MissingForwardCheck.Recorded(f, _host.IntentPath) with { NetworkNamespace = _host.NetworkNamespace }));
        var known = snapshot.Forwards.Select(f => f.Name).Concat(missing.Select(f => f.Name)).ToHashSet(PortForwardNames.Comparer);
        foreach (var unit in PersistedUnits.Where(u => u.NetworkNamespace == _host.NetworkNamespace))
        {
            foreach (var name in unit.ForwardNames.Where(n => selectors.Any(s => s.Matches(n)) && !known.Contains(n)))
            {
                findings.Add(Diagnostics.MissingForwardCheck.Persisted(name, unit.UnitName, _host.NetworkNamespace));
                known.Add(name);
            }
        }

        return (findings, known);
    }

    /// <summary>
    /// The ForeignTableDrop findings for <paramref name="forwards"/> (New-PortForward warns with them after it applies):
    /// empty without reading anything when the namespace holds no table but iptables' own and the module's.
    /// With <paramref name="acceptInOtherTables"/> (-AcceptInOtherTables), for every finding in a hand-written
    /// table, PSNetfilter's accept rule for exactly that forward is inserted at the top of the dropping chain,
    /// tagged <c>psnf:v1:NAME:accept</c> (an earlier one of the same name replaced), in one nft transaction, and
    /// the findings still open afterwards are returned. Managers that rebuild their tables (firewalld, libvirt) are
    /// left alone: a rule put there would be lost at their next reload.
    /// </summary>
    public async Task<IReadOnlyList<Diagnostics.PortForwardFinding>> CheckForeignTablesAsync(IReadOnlyList<PortForward> forwards, bool acceptInOtherTables, CancellationToken ct)
    {
        if (forwards.Count == 0 || !await _host.HasForeignNftTablesAsync(ct).ConfigureAwait(false)
            || await _host.ListNftRulesetAsync(ct).ConfigureAwait(false) is not { } nftables)
        {
            return Array.Empty<Diagnostics.PortForwardFinding>();
        }

        var findings = await EvaluateForeignTablesAsync(forwards, nftables, ct).ConfigureAwait(false);
        var byName = forwards.ToDictionary(f => f.Name, PortForwardNames.Comparer);
        var open = acceptInOtherTables
            ? findings.Where(x => Diagnostics.ForeignTableCheck.CanOpen(x) && x.Forward is not null && byName.ContainsKey(x.Forward)).ToList()
            : new List<Diagnostics.PortForwardFinding>();
        if (open.Count == 0)
        {
            return findings;
        }

        var script = new System.Text.StringBuilder(AcceptRuleDeletions(nftables, open.Select(x => x.Forward!).ToList()));
        foreach (var x in open)
        {
            script.Append("insert rule ").Append(x.Table).Append(' ').Append(x.Chain).Append(' ').Append(Diagnostics.ForeignTableCheck.AcceptRule(byName[x.Forward!])).Append('\n');
        }

        await _host.ApplyNftScriptAsync(script.ToString(), ct).ConfigureAwait(false);
        foreach (var x in open)
        {
            _observer.Verbose($"Accepted '{x.Forward}' in table {x.Table}, chain {x.Chain} (rule tagged {Diagnostics.ForeignTableCheck.AcceptTag(x.Forward!)}).");
        }

        var after = await _host.ListNftRulesetAsync(ct).ConfigureAwait(false) ?? nftables;
        return await EvaluateForeignTablesAsync(forwards, after, ct).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<Diagnostics.PortForwardFinding>> EvaluateForeignTablesAsync(IReadOnlyList<PortForward> forwards, NftJson.NftRuleset nftables, CancellationToken ct)
    {
        var devices = await RouteDevicesAsync(forwards, ct).ConfigureAwait(false);
        var gateway = forwards.Any(f => f.ExternalAddress is not null)
            ? await InventoryAsync("the interface the clients' packets arrive on is not known", ct).ConfigureAwait(false)
            : null;
        return forwards.SelectMany(f => Diagnostics.ForeignTableCheck.Evaluate(f, nftables, devices.GetValueOrDefault(f.InternalAddress), gateway?.DeviceOf(f.ExternalAddress)))
            .Select(x => x with { NetworkNamespace = _host.NetworkNamespace })
            .ToList();
    }

    /// <summary>Deletes the tagged accept rules -AcceptInOtherTables put into other tables for <paramref name="names"/> (a removed forward takes them along).</summary>
    public async Task RemoveAcceptRulesAsync(IReadOnlyCollection<string> names, CancellationToken ct)
    {
        if (names.Count == 0 || !await _host.HasForeignNftTablesAsync(ct).ConfigureAwait(false)
            || await _host.ListNftRulesetAsync(ct).ConfigureAwait(false) is not { } nftables)
        {
            return;
        }

        var script = AcceptRuleDeletions(nftables, names);
        if (script.Length > 0)
        {
            await _host.ApplyNftScriptAsync(script, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One <c>delete rule ... handle N</c> line per accept rule tagged for one of <paramref name="names"/>.</summary>
    private static string AcceptRuleDeletions(NftJson.NftRuleset nftables, IReadOnlyCollection<string> names)
    {
        var tags = names.Select(Diagnostics.ForeignTableCheck.AcceptTag).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var sb = new System.Text.StringBuilder();
        foreach (var r in nftables.Rules.Where(r => r.Comment is { } c && tags.Contains(c)))
        {
            sb.Append("delete rule ").Append(r.Family).Append(' ').Append(r.Table).Append(' ').Append(r.Chain).Append(" handle ").Append(r.Handle.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>
    /// The interface the gateway routes each forward's internal address through, from the routes this manager
    /// already looked up (a New-PortForward resolved them for its SNAT address) and one <c>ip route get</c> batch
    /// for the others.
    /// </summary>
    private async Task<Dictionary<IPAddress, string>> RouteDevicesAsync(IEnumerable<PortForward> forwards, CancellationToken ct)
    {
        var wanted = forwards.Select(f => f.InternalAddress).Distinct().ToList();
        var unknown = wanted.Where(a => !_routes.ContainsKey(a)).ToList();
        if (unknown.Count > 0)
        {
            foreach (var (address, route) in await _host.GetRoutesAsync(unknown, ct).ConfigureAwait(false))
            {
                _routes[address] = route;
            }
        }

        var devices = new Dictionary<IPAddress, string>();
        foreach (var address in wanted)
        {
            if (_routes.TryGetValue(address, out var route) && route.Device is { } dev)
            {
                devices[address] = dev;
            }
        }

        return devices;
    }

    /// <summary>
    /// The gateway's interfaces and addresses, read once per manager (one <c>ip -j addr show</c>) whoever asks
    /// first: the resolve of New-PortForward, Test-PortForward, or the check of other tables after a change. A
    /// failure is a warning saying what was not checked (<paramref name="consequence"/>), and null.
    /// </summary>
    private async Task<Diagnostics.GatewayInventory?> InventoryAsync(string consequence, CancellationToken ct)
    {
        if (_inventory is null && _inventoryError is null)
        {
            try
            {
                _inventory = await _host.GetInventoryAsync(ct).ConfigureAwait(false);
            }
            catch (NetfilterException ex)
            {
                _inventoryError = ex;
                _observer.Warning($"The gateway's interfaces and addresses could not be read, so {consequence}: {ex.Message}");
            }
        }

        return _inventory;
    }

    /// <summary>Takes the namespace lock and reads the live ruleset: the start of every change.</summary>
    /// <param name="readForwarding">Also read the forwarding sysctls, alongside the rulesets (for adds).</param>
    /// <param name="adding">
    /// The forwards the change will add, when it may apply them (not -WhatIf): the iptables-restore of each of
    /// their families is started now, alongside the reads, and waits for the payload. One process per table
    /// when the forwards alone make <see cref="NetfilterHost.ConcurrentTablesFromLines"/> lines or more.
    /// </param>
    public async Task<ChangeSession> OpenAsync(CancellationToken ct, bool readForwarding = false, IReadOnlyCollection<PortForwardDefinition>? adding = null)
    {
        _host.EnsureUsable();
        var gate = await _host.LockAsync(ct).ConfigureAwait(false);
        return await OpenLockedAsync(gate, readForwarding, adding, stream: false, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Opens a streamed change, for a pipeline of many forwards: <see cref="OpenAsync"/> with one restore
    /// process per table for each family of <paramref name="adding"/>, to which <see cref="PlanAdds"/> writes
    /// every accepted forward's lines at once; <see cref="CommitAsync"/> then only adds the deletions and COMMIT.
    /// Null when the namespace lock is taken (it does not wait: the change is then made at the end as usual), or
    /// when the backend is iptables-legacy, whose restore holds the xtables lock for as long as it runs.
    /// </summary>
    public async Task<ChangeSession?> TryOpenStreamingAsync(IReadOnlyCollection<PortForwardDefinition> adding, CancellationToken ct)
    {
        _host.EnsureUsable();
        if ((await _host.GetBackendAsync(ct).ConfigureAwait(false)).Kind != IptablesBackendKind.Nft)
        {
            return null;
        }

        var gate = _host.TryLock();
        return gate is null ? null : await OpenLockedAsync(gate, readForwarding: true, adding, stream: true, ct).ConfigureAwait(false);
    }

    private async Task<ChangeSession> OpenLockedAsync(NamespaceLock gate, bool readForwarding, IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, CancellationToken ct)
    {
        var prepared = new Dictionary<IpFamily, Task<PreparedRestore>>();
        try
        {
            var forwarding = readForwarding
                ? Families.ToDictionary(f => f, f => ReadForwardingAsync(f, ct))
                : new Dictionary<IpFamily, Task<bool?>>();
            // An add reads the families it adds to, and the others only if they hold module chains.
            var read = adding is null ? ReadAsync(ct) : ReadAsync(ct, adding.Select(d => d.Family).Distinct().ToList());

            // The restores start while the rulesets are read; they wait for their input.
            foreach (var group in (adding ?? Array.Empty<PortForwardDefinition>()).GroupBy(d => d.Family))
            {
                // Sized before it is planned: every forward writes rules to both tables.
                var perTable = stream || NetfilterHost.OneProcessPerTable(group.Count() * RulesPerForward, RuleLayout.Tables.Count);
                prepared[group.Key] = _host.PrepareRestoreAsync(group.Key, perTable, ct);
            }

            var snapshot = await read.ConfigureAwait(false);
            var session = new ChangeSession(gate, snapshot) { Forwarding = forwarding };
            foreach (var (family, task) in prepared)
            {
                session.Prepared[family] = task;
            }

            if (stream)
            {
                session.Stream = new();
                foreach (var task in prepared.Values)
                {
                    await task.ConfigureAwait(false); // started: PlanAdds writes to them from now on
                }
            }

            return session;
        }
        catch
        {
            // A stand-in session closes the prepared restores, then releases the lock.
            var standIn = new ChangeSession(gate, new ForwardSnapshot { Rulesets = new Dictionary<IpFamily, Ruleset>(), States = new Dictionary<IpFamily, OwnedState>() });
            foreach (var (family, task) in prepared)
            {
                standIn.Prepared[family] = task;
            }

            standIn.Dispose();
            throw;
        }
    }

    /// <summary>The rules a plain forward writes (DNAT, SNAT, FORWARD accept): to size a change before it is planned.</summary>
    private const int RulesPerForward = 3;

    /// <summary>
    /// From this many forwards of one namespace on, New-PortForward streams its change (<see cref="TryOpenStreamingAsync"/>):
    /// the size from which a payload is applied one process per table anyway.
    /// </summary>
    public const int StreamFromForwards = (NetfilterHost.ConcurrentTablesFromLines + RulesPerForward - 1) / RulesPerForward;

    /// <summary>
    /// Decides, item by item, what New-PortForward does: nothing (same definition), create, replace (with
    /// force) or fail (PortForwardExists, ExternalEndpointInUse). Synchronous, so the observer's
    /// ShouldProcess runs on the caller's thread.
    /// </summary>
    public void PlanAdds(ChangeSession session, IReadOnlyList<PortForwardDefinition> definitions, bool force)
    {
        // A name is unique across families; should a name exist in both (left by hand or by an interrupted
        // cross-family replace), the forward of the same family is the one compared and replaced. The indexes
        // live in the session: a streamed change calls this once per piped forward.
        if (session.ByName is null || session.Endpoints is null)
        {
            // Names are case-insensitive (PortForwardNames): 'Web' finds the forward 'web', so it is refused as existing.
            session.ByName = session.Snapshot.Forwards.GroupBy(f => f.Name, PortForwardNames.Comparer).ToDictionary(g => g.Key, g => g.ToList(), PortForwardNames.Comparer);
            session.Endpoints = new EndpointIndex();
            foreach (var f in session.Snapshot.Forwards)
            {
                session.Endpoints.Add(f.Definition);
            }
        }

        var byName = session.ByName;
        var endpoints = session.Endpoints;
        foreach (var def in definitions)
        {
            if (session.Batch.TryGetValue(def.Name, out var earlier))
            {
                if (!earlier.Equals(def))
                {
                    _observer.Failed(Exists(def, earlier, "earlier in the same pipeline"));
                }

                continue;
            }

            var old = byName.TryGetValue(def.Name, out var same) ? same.FirstOrDefault(f => f.Family == def.Family) ?? same[0] : null;
            var complete = old is not null && old.IsComplete;
            if (old is not null && old.DefinitionPartial && SameDefinition(old, def))
            {
                _observer.Failed(new NetfilterException(
                    "PortForwardDefinitionLost",
                    FailureKind.InvalidData,
                    $"Port forward '{def.Name}' cannot be made whole from what is left of it ({old.Status}): its source allow-list, interface or description were in the rules that are gone, and re-creating it without them could open it to more than before. Run New-PortForward with its full definition and -Force.",
                    def.Name));
                continue;
            }

            if (old is not null && old.Definition.Equals(def) && complete)
            {
                session.Batch[def.Name] = def;
                session.Unchanged.Add(new ChangeResult(old, ChangeKind.Unchanged));
                _observer.Verbose($"Port forward '{def.Name}' already exists with the same definition: nothing to do.");
                continue;
            }

            if (old is not null && !force)
            {
                _observer.Failed(SameDefinition(old, def)
                    ? new NetfilterException("PortForwardIncomplete", FailureKind.ResourceExists, $"Port forward '{def.Name}' exists but is incomplete ({old.Status}). Use -Force to restore it whole.", def.Name)
                    : Exists(def, old.Definition, "in the kernel"));
                continue;
            }

            var clash = endpoints.FindOverlap(def);
            if (clash is not null)
            {
                _observer.Failed(new NetfilterException(
                    "ExternalEndpointInUse",
                    FailureKind.ResourceExists,
                    $"Port forward '{clash.Name}' already forwards {RuleLayout.ProtoName(clash.Protocol)} {PortForward.Endpoint(clash.ExternalAddress, clash.ExternalPort, clash.ExternalPortEnd)}, which overlaps {PortForward.Endpoint(def.ExternalAddress, def.ExternalPort, def.ExternalPortEnd)} of '{def.Name}'. Remove it first or use another external port.",
                    def.Name));
                continue;
            }

            var action = old is null ? "Create port forward" : "Replace port forward (was: " + old + ")";
            if (!_observer.ShouldProcess(Describe(def), action))
            {
                continue;
            }

            session.Batch[def.Name] = def;
            endpoints.Add(def);
            session.Accept(new PendingChange(def, old));
            _observer.Debug($"Plan: {(old is null ? "create" : "replace")} {Describe(def)}");
        }

        session.WriteStream();
    }

    /// <summary>Chooses the forwards to remove; a literal name that matches nothing is a PortForwardNotFound error.</summary>
    /// <param name="missing">
    /// Forwards the record of intent holds but the kernel no longer has (<see cref="MissingAsync"/>): a selector
    /// that names one forgets it (the record drops it; there are no rules to delete), so that it is no longer reported.
    /// </param>
    public void PlanRemoves(ChangeSession session, IReadOnlyList<NameSelector> selectors, IReadOnlyList<PortForward>? missing = null)
    {
        var all = session.Snapshot.Forwards.OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        var chosen = new HashSet<(string, IpFamily)>();
        foreach (var selector in selectors)
        {
            var matches = all.Where(f => selector.Matches(f.Name)).ToList();
            var gone = (missing ?? Array.Empty<PortForward>()).Where(f => selector.Matches(f.Name)).ToList();
            foreach (var f in gone.Where(f => chosen.Add((f.Name, f.Family))))
            {
                if (_observer.ShouldProcess(f.ToString(), "Forget port forward (its rules are gone from the kernel)"))
                {
                    session.Forgotten.Add(f);
                    _observer.Debug($"Plan: forget {f}: recorded, but none of its rules are in the kernel");
                }
            }

            if (matches.Count == 0 && gone.Count == 0 && selector.IsLiteral)
            {
                _observer.Failed(PortForwardNames.NotFound(selector.Text, _host.NetworkNamespace));
                continue;
            }

            foreach (var f in matches)
            {
                if (!chosen.Add((f.Name, f.Family)))
                {
                    continue;
                }

                if (_observer.ShouldProcess(f.ToString(), "Remove port forward"))
                {
                    session.Accept(new PendingChange(null, f));
                    _observer.Debug($"Plan: remove {f} ({f.Rules.Count} rule(s))");
                }
            }
        }
    }

    /// <summary>
    /// Applies what the session planned: one iptables-restore per family. A forward the kernel refuses is
    /// reported and dropped, and the rest applied again. Then turns on forwarding for families that gained
    /// forwards.
    /// </summary>
    public async Task<IReadOnlyList<ChangeResult>> CommitAsync(ChangeSession session, CancellationToken ct)
    {
        var pending = session.Pending.ToList();
        var originals = session.Pending.Where(p => p.Old is not null).ToDictionary(p => p.Old!.Name, p => p.Old!, StringComparer.Ordinal);
        var applied = false;

        // Families that gain rules go first: a cross-family replace (-Force, IPv4 -> IPv6) then removes the old
        // forward only once the new one is in; a refused add leaves the old one where it was.
        var order = Families.OrderBy(f => pending.Any(p => p.New?.Family == f) ? 0 : 1).ToList();
        foreach (var family in order)
        {
            var ruleset = session.Snapshot.Rulesets[family];
            var state = session.Snapshot.States[family];
            while (true)
            {
                // Once one family is applied, the rest of the batch is applied too: a stop then takes effect after it.
                var token = applied ? CancellationToken.None : ct;
                token.ThrowIfCancellationRequested();
                var adds = pending.Where(i => i.New?.Family == family).Select(i => i.New!).ToList();
                var removes = pending.Where(i => i.Old?.Family == family).Select(i => i.Old!).ToList();
                if (adds.Count == 0 && removes.Count == 0)
                {
                    break;
                }

                var payload = session.TakeBuilder(family)?.Finish() ?? ChangePlanner.Plan(ruleset, state, adds, removes);
                _observer.Debug($"Plan ({family}): {adds.Count} to add, {removes.Count} to remove, an iptables-restore payload of {payload.LineCount} line(s).");
                try
                {
                    await _host.RestoreAsync(payload, token, await session.TakePreparedAsync(family).ConfigureAwait(false)).ConfigureAwait(false);
                    applied = true;
                    break;
                }
                catch (CommandFailedException ex)
                {
                    if (ex.PartlyApplied ?? payload.MayBePartial(ex.FailedLine))
                    {
                        // iptables-restore commits table by table: the tables before the failing one (or, with one
                        // process per table, the others that succeeded) are in the kernel. Re-read and remove every
                        // rule of the batch's names, so each of them is either whole (untouched) or absent, never
                        // half there.
                        (ruleset, state) = await ReadFamilyAsync(family, CancellationToken.None).ConfigureAwait(false);
                        await RollBackAsync(ruleset, state, pending.Where(i => (i.New ?? i.Old!.Definition).Family == family).ToList()).ConfigureAwait(false);
                        (ruleset, state) = await ReadFamilyAsync(family, CancellationToken.None).ConfigureAwait(false);

                        // Plan the rest against what is there now: a name rolled back has no rules left to delete.
                        var now = state.Forwards.ToDictionary(f => f.Name, StringComparer.Ordinal);
                        pending = pending
                            .Select(i => i.Old is not null && i.Old.Family == family ? i with { Old = now.GetValueOrDefault(i.Old.Name) } : i)
                            .Where(i => i.New is not null || i.Old is not null)
                            .ToList();
                    }

                    if (ex.Target is string owner && pending.Any(i => i.New?.Name == owner))
                    {
                        // One forward's rule was refused: report it, drop it, and apply the rest again.
                        _observer.Failed(ex);
                        pending.RemoveAll(i => i.New?.Name == owner);
                        continue;
                    }

                    throw;
                }
            }
        }

        // The rules are in: connections still DNATed by the old definitions go now, or they would keep going to
        // the old target for as long as they stay busy.
        await ClearConnectionsAsync(pending.Where(p => p.Old is not null && ConntrackFilter.Applies(p.Old)).Select(p => p.Old!).ToList()).ConfigureAwait(false);

        var results = new List<ChangeResult>(session.Unchanged);
        var appliedNames = pending.Where(x => x.New is not null).Select(x => x.New!.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var p in session.Pending)
        {
            if (p.New is null)
            {
                results.Add(new ChangeResult(p.Old!, ChangeKind.Removed));
            }
            else if (appliedNames.Contains(p.New.Name))
            {
                var forward = new PortForward(p.New) { NetworkNamespace = _host.NetworkNamespace, Persisted = IsPersisted?.Invoke(p.New.Name) ?? false };
                results.Add(new ChangeResult(forward, originals.ContainsKey(p.New.Name) ? ChangeKind.Replaced : ChangeKind.Created));
            }
        }

        results.AddRange(session.Forgotten.Select(f => new ChangeResult(f, ChangeKind.Removed)));
        if (applied || session.Forgotten.Count > 0)
        {
            await RecordAsync(results).ConfigureAwait(false);
        }

        // Forwarding is checked for every family the batch leaves forwards in, unchanged ones included, so a run
        // stopped before this point is repaired by the next one.
        var families = results.Where(r => r.Kind != ChangeKind.Removed).Select(r => r.Forward.Family).Distinct().ToList();
        await EnsureForwardingAsync(session, families, CancellationToken.None).ConfigureAwait(false);
        foreach (var iface in results.Where(r => r.Kind != ChangeKind.Removed && r.Forward.Definition.IsLoopback).Select(r => r.Forward.InInterface!).Distinct(StringComparer.Ordinal))
        {
            var key = $"net.ipv4.conf.{iface.TrimEnd('+')}.route_localnet";
            await _host.SetSysctlAsync(key, "1", CancellationToken.None).ConfigureAwait(false);
            _observer.Verbose($"Set {key}=1 so that packets arriving on {iface} may be DNATed to the loopback address.");
        }

        return results;
    }

    /// <summary>Brings the record of intent up to date after a change that applied something (still under the namespace lock).</summary>
    private async Task RecordAsync(IReadOnlyList<ChangeResult> results)
    {
        try
        {
            IntentRecord.Update(_host.IntentPath, await _host.NamespaceIdAsync().ConfigureAwait(false), results);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _observer.Warning($"The forwards are applied, but the record of what PSNetfilter created ({_host.IntentPath}) could not be written: {ex.Message} Get-PortForward and Test-PortForward cannot report these forwards if someone else deletes them.");
        }
    }

    /// <summary>
    /// Forwards the record of intent holds that the kernel does not (none of their rules are there): wiped by a
    /// flush, a firewall manager's reload or a hand edit. A forward with only some of its rules left is already
    /// known from the kernel (incomplete) and is not listed here.
    /// </summary>
    public async Task<IReadOnlyList<PortForward>> MissingAsync(IEnumerable<PortForward> live)
    {
        var names = live.Select(f => f.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var recorded = IntentRecord.Read(_host.IntentPath, await _host.NamespaceIdAsync().ConfigureAwait(false));
        return recorded.Where(d => !names.Contains(d.Name))
            .Select(d => new PortForward(d) { NetworkNamespace = _host.NetworkNamespace, Persisted = IsPersisted?.Invoke(d.Name) ?? false })
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// Deletes the conntrack entries of removed or replaced UDP forwards (one <c>conntrack -D</c> each), after the
    /// change is applied, so that a running UDP stream follows the new rules at its next datagram instead of
    /// keeping its old translation until it has been idle for the UDP timeout. TCP connections are left alone
    /// (docs/ARCHITECTURE.md says why). Never fails the change: the rules are in already.
    /// </summary>
    private async Task ClearConnectionsAsync(IReadOnlyList<PortForward> old)
    {
        foreach (var f in old)
        {
            try
            {
                var deleted = await _host.DeleteConntrackAsync(ConntrackFilter.DeleteArguments(f), CancellationToken.None).ConfigureAwait(false);
                if (deleted is null)
                {
                    _observer.Warning($"conntrack(8) is not installed, so the UDP flows that '{f.Name}' translated are not cut: a client that keeps sending reaches {f.InternalEndpoint} until it pauses for the UDP conntrack timeout (30 s, or 120 s once the server answered). Install it (apt-get install conntrack) so that Remove-PortForward and New-PortForward -Force cut them at once, or delete them now: conntrack -D {string.Join(' ', ConntrackFilter.DeleteArguments(f))}.");
                    return;
                }

                if (deleted > 0)
                {
                    _observer.Verbose($"Deleted {deleted} conntrack entr{(deleted == 1 ? "y" : "ies")} of '{f.Name}' (UDP flows to {f.InternalEndpoint}): their next datagram follows the new rules.");
                }
            }
            catch (NetfilterException ex)
            {
                _observer.Warning($"The UDP flows that '{f.Name}' translated could not be cut; a client that keeps sending reaches {f.InternalEndpoint} until it pauses for the UDP conntrack timeout: {ex.Message}");
            }
        }
    }

    /// <summary>A finding of <see cref="Diagnostics.ForwardChecks"/> as one warning: what, why, the fix and its check id.</summary>
    private static string FormatWarning(Diagnostics.PortForwardFinding finding) =>
        $"Port forward '{finding.Forward}': {finding.What} {finding.Why} {finding.Fix} ({finding.Check})";

    /// <summary>The gateway's network on the interface towards <paramref name="internalAddress"/> (its source address and prefix).</summary>
    private IPNetwork HairpinNetworkFor(IPAddress internalAddress, IReadOnlyDictionary<IPAddress, (IPAddress? Source, string? Device)> routes, IReadOnlyList<(string Device, IPAddress Address, int Prefix)> addresses)
    {
        if (routes.TryGetValue(internalAddress, out var route) && route.Source is not null)
        {
            foreach (var (device, address, prefix) in addresses)
            {
                if (address.Equals(route.Source) && (route.Device is null || device == route.Device))
                {
                    var bytes = address.GetAddressBytes();
                    for (var i = 0; i < bytes.Length; i++)
                    {
                        var keep = Math.Clamp(prefix - (i * 8), 0, 8);
                        bytes[i] &= (byte)(0xFF << (8 - keep));
                    }

                    return new IPNetwork(new IPAddress(bytes), prefix);
                }
            }
        }

        var where = _host.NetworkNamespace is null ? "this host" : $"network namespace '{_host.NetworkNamespace}'";
        throw new NetfilterException(
            "NoRouteToInternalAddress",
            FailureKind.InvalidArgument,
            $"{where} has no interface address on the route to {internalAddress}, so the network of hairpin clients for -IncludeLocal with -NoSnat is unknown. Add the route, or use source NAT.",
            internalAddress);
    }

    /// <summary>The family read as <see cref="ReadFamilyAsync"/>, or empty when it holds no module chain (no save then).</summary>
    private async Task<(Ruleset Ruleset, OwnedState State)> ReadFamilyIfOwnedAsync(IpFamily family, CancellationToken ct)
    {
        if (!await _host.HoldsNoModuleChainsAsync(family, ct).ConfigureAwait(false))
        {
            return await ReadFamilyAsync(family, ct).ConfigureAwait(false);
        }

        var empty = new Ruleset(family);
        return (empty, ForwardReader.Read(empty, _host.NetworkNamespace, IsPersisted));
    }

    /// <summary>One save of one family, rebuilt into forwards; the reader's warnings go to the observer.</summary>
    private async Task<(Ruleset Ruleset, OwnedState State)> ReadFamilyAsync(IpFamily family, CancellationToken ct)
    {
        var ruleset = await _host.SaveAsync(family, ct).ConfigureAwait(false);
        var state = ForwardReader.Read(ruleset, _host.NetworkNamespace, IsPersisted);
        foreach (var w in state.Warnings)
        {
            _observer.Warning(w);
        }

        return (ruleset, state);
    }

    /// <summary>After a partly applied payload: removes what is left of the batch's names (added or removed).</summary>
    private async Task RollBackAsync(Ruleset ruleset, OwnedState state, List<PendingChange> batch)
    {
        var names = batch.Select(i => (i.New ?? i.Old!.Definition).Name).ToHashSet(StringComparer.Ordinal);
        var leftovers = state.Forwards.Where(f => names.Contains(f.Name)).ToList();
        if (leftovers.Count == 0)
        {
            return;
        }

        _observer.Warning($"iptables-restore applied only part of the change; removing what it left of: {string.Join(", ", leftovers.Select(f => f.Name))}.");
        var cleanup = ChangePlanner.Plan(ruleset, state, Array.Empty<PortForwardDefinition>(), leftovers);
        await _host.RestoreAsync(cleanup, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>True when <see cref="ResolveAsync"/> needs no process for <paramref name="request"/> (nothing to look up, or looked up before).</summary>
    public bool CanResolveWithoutProcesses(PortForwardRequest request) =>
        (!request.NeedsRouteSource && !request.NeedsHairpinNetwork)
        || (_routes.ContainsKey(request.InternalAddress) && (!request.NeedsHairpinNetwork || _inventory is not null));

    /// <summary>
    /// Validates requests into definitions, resolving default SNAT addresses with one <c>ip route get</c>
    /// batch. A request that cannot be resolved is reported and left out.
    /// </summary>
    public async Task<List<PortForwardDefinition>> ResolveAsync(IReadOnlyList<PortForwardRequest> requests, CancellationToken ct)
    {
        // Routes and the gateway's interfaces looked up once per manager (one command each, run at once): a
        // pipeline resolved in parts (a streamed change) asks the kernel only about internal addresses it has not
        // seen yet.
        var needRoute = requests.Where(r => r.NeedsRouteSource || r.NeedsHairpinNetwork).Select(r => r.InternalAddress).Distinct().Where(a => !_routes.ContainsKey(a)).ToList();
        var lookup = needRoute.Count > 0 ? _host.GetRoutesAsync(needRoute, ct) : null;
        if (requests.Count > 0)
        {
            await InventoryAsync("-InInterface, -ExternalAddress and -InternalAddress were not checked against them", ct).ConfigureAwait(false);
        }

        if (lookup is not null)
        {
            foreach (var (address, route) in await lookup.ConfigureAwait(false))
            {
                _routes[address] = route;
            }
        }

        var routes = _routes;

        var defs = new List<PortForwardDefinition>(requests.Count);
        foreach (var r in requests)
        {
            try
            {
                IPAddress? snat = r.SnatAddress;
                if (r.NeedsRouteSource)
                {
                    snat = routes.TryGetValue(r.InternalAddress, out var route) ? route.Source : null;
                    if (snat is null)
                    {
                        var where = _host.NetworkNamespace is null ? "this host" : $"network namespace '{_host.NetworkNamespace}'";
                        throw new NetfilterException(
                            "NoRouteToInternalAddress",
                            FailureKind.InvalidArgument,
                            $"{where} has no route to {r.InternalAddress}, so there is no source address for SNAT. Add the route, or give -SnatAddress, -Masquerade or -NoSnat.",
                            r.InternalAddress);
                    }

                    _observer.Verbose($"SNAT source for {r.InternalAddress}: {snat} (ip route get).");
                }

                IPNetwork? hairpin = null;
                if (r.NeedsHairpinNetwork)
                {
                    hairpin = HairpinNetworkFor(r.InternalAddress, routes, _inventory?.Addresses ?? throw _inventoryError!);
                    _observer.Verbose($"Hairpin network for {r.InternalAddress}: {hairpin} (its clients are masqueraded).");
                }

                var def = r.Build(snat, hairpin);
                defs.Add(def);
                if (_inventory is not null)
                {
                    foreach (var finding in Diagnostics.ForwardChecks.Check(def, _inventory))
                    {
                        _observer.Warning(FormatWarning(finding));
                    }
                }
            }
            catch (NetfilterException ex)
            {
                _observer.Failed(ex);
            }
        }

        return defs;
    }

    private async Task<bool?> ReadForwardingAsync(IpFamily family, CancellationToken ct)
    {
        try
        {
            return await _host.IsForwardingEnabledAsync(family, ct).ConfigureAwait(false);
        }
        catch (NetfilterException)
        {
            return null; // read again, with its error, if it is needed
        }
    }

    private async Task EnsureForwardingAsync(ChangeSession session, IEnumerable<IpFamily> families, CancellationToken ct)
    {
        foreach (var family in families)
        {
            var known = session.Forwarding.TryGetValue(family, out var read) ? await read.ConfigureAwait(false) : null;
            if (!(known ?? await _host.IsForwardingEnabledAsync(family, ct).ConfigureAwait(false)))
            {
                await _host.EnableForwardingAsync(family, ct).ConfigureAwait(false);
                _observer.Warning($"{NetfilterHost.ForwardingKey(family)} was 0: set it to 1 so that forwarded packets are routed. This runtime setting does not survive a reboot; Install-PortForwardService persists it with the forwards.");
            }
        }
    }

    /// <summary>
    /// The same definition, allowing for drift: a SNAT forward whose SNAT rule is gone reads back without its
    /// SNAT address, which then cannot differ.
    /// </summary>
    private static bool SameDefinition(PortForward old, PortForwardDefinition def) =>
        old.Definition.Equals(def)
        || (old.SnatMode == SnatMode.Snat && old.SnatAddress is null && old.MissingRules.Contains(RuleRole.Snat)
            && def.SnatMode == SnatMode.Snat
            && PortForwardDefinition.CreateFromKernel(def.Name, def.Protocol, def.ExternalAddress, def.ExternalPort, def.InternalAddress, def.InternalPort, SnatMode.Snat, null, def.Description,
                new ForwardExtras(def.ExternalPortEnd, def.InternalPortEnd, def.SourceAddresses, def.InInterface, def.IncludeLocal)).Equals(old.Definition));

    /// <summary>
    /// The external endpoints of a namespace's forwards, indexed by family, protocol and port, so that checking
    /// a batch of N new forwards for clashes costs about N lookups rather than N times the number of forwards.
    /// </summary>
    internal sealed class EndpointIndex
    {
        private readonly Dictionary<(IpFamily, Protocol, int), List<PortForwardDefinition>> _singles = new();
        private readonly List<PortForwardDefinition> _ranges = new();

        public void Add(PortForwardDefinition d)
        {
            if (d.IsRange)
            {
                _ranges.Add(d);
                return;
            }

            var key = (d.Family, d.Protocol, d.ExternalPort);
            if (!_singles.TryGetValue(key, out var list))
            {
                _singles[key] = list = new List<PortForwardDefinition>(1);
            }

            list.Add(d);
        }

        /// <summary>A forward of another name that overlaps <paramref name="d"/>, if any.</summary>
        public PortForwardDefinition? FindOverlap(PortForwardDefinition d)
        {
            IEnumerable<PortForwardDefinition> candidates = d.IsRange && d.ExternalPortEnd - d.ExternalPort > 4096
                ? _singles.Values.SelectMany(l => l)
                : Enumerable.Range(d.ExternalPort, d.ExternalPortEnd - d.ExternalPort + 1)
                    .SelectMany(p => _singles.TryGetValue((d.Family, d.Protocol, p), out var l) ? l : Enumerable.Empty<PortForwardDefinition>());
            return candidates.Concat(_ranges).FirstOrDefault(o => o.Name != d.Name && Overlaps(o, d));
        }
    }

    /// <summary>
    /// Two forwards overlap when a packet could match both: same family and protocol, intersecting external
    /// port ranges, compatible addresses, interfaces and sources.
    /// </summary>
    internal static bool Overlaps(PortForwardDefinition a, PortForwardDefinition b) =>
        a.Family == b.Family && a.Protocol == b.Protocol
        && a.ExternalPort <= b.ExternalPortEnd && b.ExternalPort <= a.ExternalPortEnd
        && (a.ExternalAddress is null || b.ExternalAddress is null || a.ExternalAddress.Equals(b.ExternalAddress))
        && (a.InInterface is null || b.InInterface is null || a.InInterface == b.InInterface)
        && (a.SourceAddresses.Count == 0 || b.SourceAddresses.Count == 0
            || a.SourceAddresses.Any(x => b.SourceAddresses.Any(y => x.Contains(y.BaseAddress) || y.Contains(x.BaseAddress))));

    private static string Describe(PortForwardDefinition d) => new PortForward(d).ToString();

    private static NetfilterException Exists(PortForwardDefinition wanted, PortForwardDefinition have, string where) =>
        new(
            "PortForwardExists",
            FailureKind.ResourceExists,
            $"A port forward named '{wanted.Name}' already exists {where} with another definition ({string.Join("; ", wanted.Differences(have))}). Use -Force to replace it, or choose another -Name.",
            wanted.Name);
}
