using System.Net;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// Gathers what Test-PortForward checks for one namespace (the backend's snapshot and its own findings, the
/// forwarding sysctls, conntrack, a TCP connect to each internal endpoint, other programs' nftables tables, the
/// record of intent and the boot sets) and evaluates it with <see cref="PortForwardDiagnostics"/>.
/// </summary>
public sealed class ForwardDiagnosis
{
    private readonly PortForwardManager _manager;
    private readonly NetfilterHost _host;
    private readonly GatewayFacts _facts;

    public ForwardDiagnosis(PortForwardManager manager, NetfilterHost host, GatewayFacts facts)
    {
        _manager = manager;
        _host = host;
        _facts = facts;
    }

    /// <summary>
    /// Gathers what Test-PortForward checks (ruleset, sysctls, the other backend, a TCP connect to each
    /// internal endpoint from inside the namespace, unreplied conntrack entries) and evaluates it.
    /// </summary>
    /// <returns>The findings, and the names of all forwards in the namespace (to report literal names that match none).</returns>
    public async Task<(IReadOnlyList<PortForwardFinding> Findings, IReadOnlySet<string> Names)> RunAsync(IReadOnlyList<NameSelector> selectors, bool connect, CancellationToken ct)
    {
        var snapshot = await _manager.ReadSnapshotAsync(ct).ConfigureAwait(false);
        var forwards = snapshot.Forwards.Where(f => selectors.Any(s => s.Matches(f.Name))).OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        var families = forwards.Select(f => f.Family).Distinct().ToList();
        var forwarding = new Dictionary<IpFamily, bool>();
        var conntrack = new Dictionary<IpFamily, string?>();
        foreach (var family in families)
        {
            forwarding[family] = await _host.IsForwardingEnabledAsync(family, ct).ConfigureAwait(false);
            conntrack[family] = await _host.ListConntrackAsync(family, ct).ConfigureAwait(false);
        }

        var gateway = forwards.Count > 0
            ? await _facts.InventoryAsync("the forwards were not checked against them", ct).ConfigureAwait(false)
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
            ? await _facts.RouteDevicesAsync(forwards, ct).ConfigureAwait(false)
            : new Dictionary<IPAddress, string>();

        var unreplied = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var f in forwards.Where(f => f.SnatMode == SnatMode.None))
        {
            if (conntrack.TryGetValue(f.Family, out var table) && table is not null)
            {
                unreplied[f.Name] = ConntrackReader.CountUnreplied(table, f);
            }
        }

        var findings = PortForwardDiagnostics.Evaluate(new DiagnosticsInput
        {
            BackendFindings = await _manager.Backend.CheckAsync(snapshot, forwards, ct).ConfigureAwait(false),
            Forwards = forwards,
            ForwardingEnabled = forwarding,
            Reachable = reachable,
            Unreplied = unreplied,
            Nftables = nftables,
            RouteDevices = routeDevices,
            Gateway = gateway,
        }).Select(x => x with { NetworkNamespace = _host.NetworkNamespace }).ToList();

        // What the module created or persisted and the kernel no longer has (a flush, a manager's reload).
        var missing = (await _manager.MissingAsync(snapshot.Forwards).ConfigureAwait(false)).Where(f => selectors.Any(s => s.Matches(f.Name))).ToList();
        findings.AddRange(missing.Select(f => MissingForwardCheck.Recorded(f, _manager.IntentPath) with { NetworkNamespace = _host.NetworkNamespace }));
        var known = snapshot.Forwards.Select(f => f.Name).Concat(missing.Select(f => f.Name)).ToHashSet(PortForwardNames.Comparer);
        foreach (var unit in _manager.PersistedUnits.Where(u => u.NetworkNamespace == _host.NetworkNamespace))
        {
            foreach (var name in unit.ForwardNames.Where(n => selectors.Any(s => s.Matches(n)) && !known.Contains(n)))
            {
                findings.Add(MissingForwardCheck.Persisted(name, unit.UnitName, _host.NetworkNamespace));
                known.Add(name);
            }
        }

        return (findings, known);
    }
}
