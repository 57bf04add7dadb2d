using System.Net;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// What the engine asks the gateway about its network, once per manager: routes to internal addresses (one
/// <c>ip -force -batch</c> of <c>route get</c>) and the interfaces and their addresses (one <c>ip -j addr show</c>).
/// Resolves requests into definitions with them (default SNAT source, hairpin network) and warns about forwards
/// that cannot work on this gateway (<see cref="ForwardChecks"/>).
/// </summary>
public sealed class GatewayFacts
{
    private readonly NetfilterHost _host;
    private readonly IChangeObserver _observer;
    private readonly Dictionary<IPAddress, (IPAddress? Source, string? Device)> _routes = new();
    private GatewayInventory? _inventory;
    private NetfilterException? _inventoryError;
    private Task<GatewayInventory?>? _inventoryRead;

    public GatewayFacts(NetfilterHost host, IChangeObserver observer)
    {
        _host = host;
        _observer = observer;
    }

    /// <summary>
    /// The interface the gateway routes each forward's internal address through, from the routes this manager
    /// already looked up (a New-PortForward resolved them for its SNAT address) and one <c>ip route get</c> batch
    /// for the others.
    /// </summary>
    public async Task<Dictionary<IPAddress, string>> RouteDevicesAsync(IEnumerable<PortForward> forwards, CancellationToken ct)
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
    /// <remarks>The first call starts the read; later calls, and calls while it runs, wait for that one read.</remarks>
    public Task<GatewayInventory?> InventoryAsync(string consequence, CancellationToken ct) =>
        _inventoryRead ??= ReadInventoryAsync(consequence, ct);

    private async Task<GatewayInventory?> ReadInventoryAsync(string consequence, CancellationToken ct)
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

        return _inventory;
    }

    /// <summary>True when <see cref="ResolveAsync"/> needs no process for <paramref name="request"/> (nothing to look up, or looked up before).</summary>
    public bool CanResolveWithoutProcesses(PortForwardRequest request) =>
        (!request.NeedsRouteSource && !request.NeedsHairpinNetwork)
        || (_routes.ContainsKey(request.InternalAddress) && (!request.NeedsHairpinNetwork || _inventory is not null));

    /// <summary>
    /// Validates requests into definitions, resolving default SNAT addresses with one <c>ip route get</c>
    /// batch, and warns about definitions that cannot work on this gateway (<see cref="CheckAsync"/>). A request
    /// that cannot be resolved is reported and left out.
    /// </summary>
    public async Task<List<PortForwardDefinition>> ResolveAsync(IReadOnlyList<PortForwardRequest> requests, CancellationToken ct)
    {
        var defs = await ResolveUncheckedAsync(requests, ct).ConfigureAwait(false);
        await CheckAsync(defs, ct).ConfigureAwait(false);
        return defs;
    }

    /// <summary>
    /// As <see cref="ResolveAsync"/> without the warnings: the read of the gateway's interfaces is started, and
    /// waited for only when a hairpin network needs it, so it can run alongside the namespace lock and the read of
    /// the rules. <see cref="CheckAsync"/> then warns (before anything is planned or asked).
    /// </summary>
    public async Task<List<PortForwardDefinition>> ResolveUncheckedAsync(IReadOnlyList<PortForwardRequest> requests, CancellationToken ct)
    {
        // Routes and the gateway's interfaces looked up once per manager (one command each, run at once): a
        // pipeline resolved in parts (a streamed change) asks the kernel only about internal addresses it has not
        // seen yet.
        var needRoute = requests.Where(r => r.NeedsRouteSource || r.NeedsHairpinNetwork).Select(r => r.InternalAddress).Distinct().Where(a => !_routes.ContainsKey(a)).ToList();
        var lookup = needRoute.Count > 0 ? _host.GetRoutesAsync(needRoute, ct) : null;
        if (requests.Count > 0)
        {
            var inventory = InventoryAsync(Unchecked, ct);
            if (requests.Any(r => r.NeedsHairpinNetwork))
            {
                await inventory.ConfigureAwait(false);
            }
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

                defs.Add(r.Build(snat, hairpin));
            }
            catch (NetfilterException ex)
            {
                _observer.Failed(ex);
            }
        }

        return defs;
    }

    /// <summary>Warns about each definition that cannot work on this gateway (<see cref="ForwardChecks"/>), once the read of its interfaces (started by the resolve) is done.</summary>
    public async Task CheckAsync(IReadOnlyList<PortForwardDefinition> definitions, CancellationToken ct)
    {
        if (_inventoryRead is null && definitions.Count == 0)
        {
            return;
        }

        if (await InventoryAsync(Unchecked, ct).ConfigureAwait(false) is not { } inventory)
        {
            return;
        }

        foreach (var def in definitions)
        {
            foreach (var finding in ForwardChecks.Check(def, inventory))
            {
                _observer.Warning(FormatWarning(finding));
            }
        }
    }

    private const string Unchecked = "-InInterface, -ExternalAddress and -InternalAddress were not checked against them";

    /// <summary>A finding of <see cref="ForwardChecks"/> as one warning: what, why, the fix and its check id.</summary>
    private static string FormatWarning(PortForwardFinding finding) =>
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
}
