using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// The engine: read -> decide -> apply for one namespace, whatever the backend. Takes the namespace lock for
/// every change, reads the module's forwards through the backend, decides per item (create, replace, nothing,
/// refuse) asking the observer before each change, and has the backend apply the whole batch. Afterwards it
/// cuts stale UDP flows, records what it created (<see cref="IntentRecord"/>) and switches forwarding on.
/// </summary>
public sealed class PortForwardManager
{
    private static readonly IpFamily[] Families = { IpFamily.IPv4, IpFamily.IPv6 };

    private readonly NetfilterHost _host;
    private readonly IChangeObserver _observer;
    private readonly GatewayFacts _facts;

    /// <param name="backend">How forwards are laid out in the kernel; <see cref="BackendCatalog.Default"/> when null.</param>
    public PortForwardManager(NetfilterHost host, IChangeObserver observer, INetfilterBackend? backend = null)
    {
        _host = host;
        _observer = observer;
        Backend = backend ?? BackendCatalog.Create(BackendCatalog.Default, host);
        _facts = new GatewayFacts(host, observer);
    }

    public INetfilterBackend Backend { get; }

    /// <summary>
    /// The backend was chosen for this call (-Backend, or the preference): a forward another backend holds moves to it
    /// (reported Replaced) even when its definition is the same. Otherwise forwards stay in the backend that holds them.
    /// </summary>
    public bool MoveToChosenBackend { get; init; }

    /// <summary>Set to mark forwards that are in a saved boot set (persistence).</summary>
    public Func<string, bool>? IsPersisted { get; init; }

    /// <summary>Where the record of intent of this namespace is kept.</summary>
    public string IntentPath => IntentRecord.PathFor(_host.LockDirectory, _host.NetworkNamespace);

    /// <summary>The boot sets installed on this machine: Test-PortForward reports their forwards the kernel lacks.</summary>
    public IReadOnlyList<BootSetInfo> PersistedUnits { get; init; } = Array.Empty<BootSetInfo>();

    /// <summary>From this many forwards of one namespace on, New-PortForward streams its change (<see cref="TryOpenStreamingAsync"/>).</summary>
    public int StreamFromForwards => Backend.StreamFromForwards;

    private ReadOptions Options => new(IsPersisted, _observer.Warning);

    /// <summary>Reads every forward of the namespace through the backend.</summary>
    /// <remarks>
    /// A read needs no family: each backend reads only where it holds state (the iptables backend skips a family
    /// whose nf_tables chains, listed in-process, include no PSNF- chain; iptables-legacy is always read), so listing
    /// forwards of one backend does not pay for the other's rules.
    /// </remarks>
    public async Task<BackendSnapshot> ReadSnapshotAsync(CancellationToken ct)
    {
        _host.EnsureUsable();
        return await Backend.ReadAsync(Array.Empty<IpFamily>(), Options, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<PortForward>> GetAsync(CancellationToken ct) =>
        (await ReadSnapshotAsync(ct).ConfigureAwait(false)).Forwards.OrderBy(f => f.Name, StringComparer.Ordinal).ToList();

    /// <summary>What Test-PortForward reports (<see cref="ForwardDiagnosis"/>).</summary>
    /// <returns>The findings, and the names of all forwards in the namespace (to report literal names that match none).</returns>
    public Task<(IReadOnlyList<PortForwardFinding> Findings, IReadOnlySet<string> Names)> DiagnoseAsync(IReadOnlyList<NameSelector> selectors, bool connect, CancellationToken ct) =>
        new ForwardDiagnosis(this, _host, _facts).RunAsync(selectors, connect, ct);

    /// <summary>The ForeignTableDrop findings for <paramref name="forwards"/>, after opening them where asked (<see cref="ForeignTableAccess.CheckAsync"/>).</summary>
    public Task<IReadOnlyList<PortForwardFinding>> CheckForeignTablesAsync(IReadOnlyList<PortForward> forwards, bool acceptInOtherTables, CancellationToken ct) =>
        new ForeignTableAccess(_host, _observer, _facts).CheckAsync(forwards, acceptInOtherTables, ct);

    /// <summary>Deletes the tagged accept rules -AcceptInOtherTables put into other tables for <paramref name="names"/>.</summary>
    public Task RemoveAcceptRulesAsync(IReadOnlyCollection<string> names, CancellationToken ct) =>
        new ForeignTableAccess(_host, _observer, _facts).RemoveAcceptRulesAsync(names, ct);

    /// <summary>True when <see cref="ResolveAsync"/> needs no process for <paramref name="request"/>.</summary>
    public bool CanResolveWithoutProcesses(PortForwardRequest request) => _facts.CanResolveWithoutProcesses(request);

    /// <summary>Validates requests into definitions (<see cref="GatewayFacts.ResolveAsync"/>); one that cannot be resolved is reported and left out.</summary>
    public Task<List<PortForwardDefinition>> ResolveAsync(IReadOnlyList<PortForwardRequest> requests, CancellationToken ct) => _facts.ResolveAsync(requests, ct);

    /// <summary>As <see cref="ResolveAsync"/>, leaving the gateway's interfaces to be read while the change opens; <see cref="CheckResolvedAsync"/> warns afterwards (<see cref="GatewayFacts.ResolveUncheckedAsync"/>).</summary>
    public Task<List<PortForwardDefinition>> ResolveUncheckedAsync(IReadOnlyList<PortForwardRequest> requests, CancellationToken ct) => _facts.ResolveUncheckedAsync(requests, ct);

    /// <summary>The warnings about definitions that cannot work on this gateway (<see cref="GatewayFacts.CheckAsync"/>).</summary>
    public async Task<bool> CheckResolvedAsync(IReadOnlyList<PortForwardDefinition> definitions, CancellationToken ct)
    {
        await _facts.CheckAsync(definitions, ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>Takes the namespace lock and opens a change on a fresh snapshot: the start of every change.</summary>
    /// <param name="readForwarding">Also read the forwarding sysctls, alongside the snapshot (for adds).</param>
    /// <param name="adding">The forwards the change will add, when it may apply them (not -WhatIf): the backend starts its work for them alongside the read.</param>
    public async Task<ChangeSession> OpenAsync(CancellationToken ct, bool readForwarding = false, IReadOnlyCollection<PortForwardDefinition>? adding = null)
    {
        _host.EnsureUsable();
        var gate = await _host.LockAsync(ct).ConfigureAwait(false);
        return await OpenLockedAsync(gate, readForwarding, adding, stream: false, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Opens a streamed change, for a pipeline of many forwards: the backend plans every accepted forward at once
    /// and hands it to the kernel side while the pipeline still runs; <see cref="CommitAsync"/> then completes it.
    /// Null when the namespace lock is taken (it does not wait: the change is then made at the end as usual), or
    /// when the backend cannot stream now.
    /// </summary>
    public async Task<ChangeSession?> TryOpenStreamingAsync(IReadOnlyCollection<PortForwardDefinition> adding, CancellationToken ct)
    {
        _host.EnsureUsable();
        if (!await Backend.CanStreamAsync(ct).ConfigureAwait(false))
        {
            return null;
        }

        var gate = _host.TryLock();
        return gate is null ? null : await OpenLockedAsync(gate, readForwarding: true, adding, stream: true, ct).ConfigureAwait(false);
    }

    private async Task<ChangeSession> OpenLockedAsync(NamespaceLock gate, bool readForwarding, IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, CancellationToken ct)
    {
        try
        {
            var forwarding = readForwarding
                ? Families.ToDictionary(f => f, f => ReadForwardingAsync(f, ct))
                : new Dictionary<IpFamily, Task<bool?>>();
            var change = await Backend.OpenChangeAsync(adding, stream, Options, ct).ConfigureAwait(false);
            return new ChangeSession(gate, change) { Forwarding = forwarding };
        }
        catch
        {
            gate.Dispose();
            throw;
        }
    }

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

            // A forward held by another backend than the chosen one moves there when the backend was chosen (-Backend).
            var move = old is not null && MoveToChosenBackend && old.Backend is not null && old.Backend != Backend.Name;
            if (old is not null && old.DefinitionPartial && SameDefinition(old, def))
            {
                _observer.Failed(new NetfilterException(
                    "PortForwardDefinitionLost",
                    FailureKind.InvalidData,
                    $"Port forward '{def.Name}' cannot be made whole from what is left of it ({old.Status}): its source allow-list, interface or description were in the rules that are gone, and re-creating it without them could open it to more than before. Run New-PortForward with its full definition and -Force.",
                    def.Name));
                continue;
            }

            if (old is not null && old.Definition.Equals(def) && complete && !move)
            {
                session.Batch[def.Name] = def;
                session.Unchanged.Add(new ChangeResult(old, ChangeKind.Unchanged));
                _observer.Verbose($"Port forward '{def.Name}' already exists with the same definition: nothing to do.");
                continue;
            }

            if (old is not null && !force && !(move && old.Definition.Equals(def) && complete))
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
                    $"Port forward '{clash.Name}' already forwards {ProtocolName.Of(clash.Protocol)} {PortForward.Endpoint(clash.ExternalAddress, clash.ExternalPort, clash.ExternalPortEnd)}, which overlaps {PortForward.Endpoint(def.ExternalAddress, def.ExternalPort, def.ExternalPortEnd)} of '{def.Name}'. Remove it first or use another external port.",
                    def.Name));
                continue;
            }

            var action = old is null ? "Create port forward"
                : move ? $"Move port forward from the {old.Backend} backend to the {Backend.Name} backend (was: {old})"
                : "Replace port forward (was: " + old + ")";
            var described = Describe(def);
            if (!_observer.ShouldProcess(described, action))
            {
                continue;
            }

            session.Batch[def.Name] = def;
            endpoints.Add(def);
            session.Accept(new PendingChange(def, old) { Backend = old is null || move ? Backend.Name : old.Backend ?? Backend.Name });
            _observer.Debug((old is null ? "Plan: create " : "Plan: replace ") + described);
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
                    _observer.Debug($"Plan: remove {f}");
                }
            }
        }
    }

    /// <summary>
    /// Applies what the session planned through the backend (a forward the kernel refuses is reported and
    /// left out), cuts the UDP flows of removed or replaced forwards, brings the record of intent up to date, and
    /// turns on forwarding for families that gained forwards.
    /// </summary>
    public async Task<IReadOnlyList<ChangeResult>> CommitAsync(ChangeSession session, CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var originals = session.Pending.Where(p => p.Old is not null).Select(p => p.Old!.Name).ToHashSet(PortForwardNames.Comparer);
        var outcome = await session.Change.CommitAsync(session.Pending, _observer, ct).ConfigureAwait(false);
        var pending = outcome.Applied;
        var applied = outcome.AnyApplied;
        var committed = System.Diagnostics.Stopwatch.GetTimestamp();

        // The rules are in: connections still DNATed by the old definitions go now, or they would keep going to
        // the old target for as long as they stay busy.
        await new StaleFlows(_host, _observer).ClearAsync(pending.Where(p => p.Old is not null && ConntrackFilter.Applies(p.Old)).Select(p => p.Old!).ToList()).ConfigureAwait(false);

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
                var forward = new PortForward(p.New) { NetworkNamespace = _host.NetworkNamespace, Backend = p.Backend ?? Backend.Name, Persisted = IsPersisted?.Invoke(p.New.Name) ?? false };
                results.Add(new ChangeResult(forward, originals.Contains(p.New.Name) ? ChangeKind.Replaced : ChangeKind.Created));
            }
        }

        results.AddRange(session.Forgotten.Select(f => new ChangeResult(f, ChangeKind.Removed)));
        var recording = System.Diagnostics.Stopwatch.GetTimestamp();
        if (applied || session.Forgotten.Count > 0)
        {
            await RecordAsync(results).ConfigureAwait(false);
        }

        var recorded = System.Diagnostics.Stopwatch.GetTimestamp();

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

        _observer.Debug($"Timing: backend commit {Timing.Ms(started, committed)}, stale flows and results {Timing.Ms(committed, recording)}, record of intent {Timing.Ms(recording, recorded)}, forwarding check {Timing.Ms(recorded)}.");
        return results;
    }

    /// <summary>Brings the record of intent up to date after a change that applied something (still under the namespace lock).</summary>
    private async Task RecordAsync(IReadOnlyList<ChangeResult> results)
    {
        try
        {
            IntentRecord.Update(IntentPath, await _host.NamespaceIdAsync().ConfigureAwait(false), results);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _observer.Warning($"The forwards are applied, but the record of what PSNetfilter created ({IntentPath}) could not be written: {ex.Message} Get-PortForward and Test-PortForward cannot report these forwards if someone else deletes them.");
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
        var recorded = IntentRecord.Read(IntentPath, await _host.NamespaceIdAsync().ConfigureAwait(false));
        return recorded.Where(d => !names.Contains(d.Name))
            .Select(d => new PortForward(d) { NetworkNamespace = _host.NetworkNamespace, Persisted = IsPersisted?.Invoke(d.Name) ?? false })
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
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
        || (old.SnatMode == SnatMode.Snat && old.SnatAddress is null && old.MissingRules.Contains(ForwardPart.Snat)
            && def.SnatMode == SnatMode.Snat
            && PortForwardDefinition.CreateFromKernel(def.Name, def.Protocol, def.ExternalAddress, def.ExternalPort, def.InternalAddress, def.InternalPort, SnatMode.Snat, null, def.Description,
                new ForwardExtras(def.ExternalPortEnd, def.InternalPortEnd, def.SourceAddresses, def.InInterface, def.IncludeLocal)).Equals(old.Definition));

    private static string Describe(PortForwardDefinition d) => new PortForward(d).ToString();

    private static NetfilterException Exists(PortForwardDefinition wanted, PortForwardDefinition have, string where) =>
        new(
            "PortForwardExists",
            FailureKind.ResourceExists,
            $"A port forward named '{wanted.Name}' already exists {where} with another definition ({string.Join("; ", wanted.Differences(have))}). Use -Force to replace it, or choose another -Name.",
            wanted.Name);
}
