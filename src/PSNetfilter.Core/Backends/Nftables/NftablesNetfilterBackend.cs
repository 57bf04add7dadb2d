using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// Forwards as elements and rules of one nftables table per namespace, <c>table inet psnetfilter</c>
/// (<see cref="NftTableLayout"/>), and nothing else: reading lists only that table (<c>nft -j list table</c>), so
/// its cost does not grow with other programs' rules, and every change of a pipeline, both families, NAT and
/// filter, is one <c>nft -f</c> transaction (<see cref="NftablesChange"/>): applied whole or not at all, so this
/// path needs no rollback.
/// </summary>
public sealed class NftablesNetfilterBackend : INetfilterBackend
{
    private readonly NetfilterHost _host;
    private readonly NftRunner _runner;

    /// <param name="runner">How nft runs; libnftables in-process when it loads, the nft executable otherwise.</param>
    public NftablesNetfilterBackend(NetfilterHost host, NftRunner? runner = null)
    {
        _host = host;
        _runner = runner ?? NftRunner.For(host, host.Log);
        Mirror = new IptablesForwardMirror(host);
    }

    /// <summary>The forwards' accepts in iptables' filter FORWARD, where that chain drops.</summary>
    internal IptablesForwardMirror Mirror { get; }

    public string Name => BackendCatalog.Nftables;

    /// <summary>Never: the whole pipeline is one transaction at its end.</summary>
    public int StreamFromForwards => int.MaxValue;

    public string StreamTarget => "nft";

    public async Task<BackendSnapshot> ReadAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct) =>
        await ReadSnapshotAsync(options, ct).ConfigureAwait(false);

    public Task<bool> CanStreamAsync(CancellationToken ct) => Task.FromResult(false);

    public async Task<IBackendChange> OpenChangeAsync(IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, ReadOptions options, CancellationToken ct) =>
        new NftablesChange(this, await ReadSnapshotAsync(options, ct).ConfigureAwait(false), options);

    /// <summary>
    /// IptablesForwardDrop: iptables' filter FORWARD drops and a forward has no accept there
    /// (<see cref="IptablesForwardMirror.Check"/>); a forward with parts missing is Drift, as in every backend.
    /// </summary>
    public Task<IReadOnlyList<PortForwardFinding>> CheckAsync(BackendSnapshot snapshot, IReadOnlyList<PortForward> forwards, CancellationToken ct)
    {
        var iptables = ((NftablesSnapshot)snapshot).Iptables;
        var findings = forwards.Select(f => IptablesForwardMirror.Check(f, iptables.GetValueOrDefault(f.Family))).Where(f => f is not null).Select(f => f!).ToList();
        return Task.FromResult<IReadOnlyList<PortForwardFinding>>(findings);
    }

    /// <summary>Reads the table (only it) and rebuilds the forwards; a table that does not exist is empty.</summary>
    internal async Task<NftablesSnapshot> ReadSnapshotAsync(ReadOptions options, CancellationToken ct)
    {
        var listing = await _runner.ListJsonAsync($"list table {NftTableLayout.Table}", ct).ConfigureAwait(false);
        NftTableState state;
        if (listing.Success)
        {
            state = NftTableReader.Read(listing.Output);
        }
        else if (listing.Error.Contains("No such file or directory", StringComparison.Ordinal))
        {
            state = NftTableState.Empty; // no forward was ever made here
        }
        else
        {
            listing.EnsureSuccess($"list table {NftTableLayout.Table}");
            throw new InvalidOperationException("unreachable");
        }

        // Where iptables' filter FORWARD drops, a forward's FORWARD part includes its accept there.
        var iptables = await Mirror.ReadAsync(state.Forwards.Where(f => f.Definition is not null).Select(f => f.Definition!.Family), ct).ConfigureAwait(false);
        var forwards = new List<PortForward>(state.Forwards.Count);
        foreach (var f in state.Forwards)
        {
            if (f.Definition is null)
            {
                options.Warning($"Port forward '{f.Name}' in table {NftTableLayout.Table} lost the part that holds its definition (missing {string.Join(", ", f.Missing)}); what is left of it is removed when a forward of that name is created again (New-PortForward -Name '{f.Name}' with its full definition).");
                continue;
            }

            var missing = f.Missing.Select(PartOf).Where(p => p is not null).Select(p => p!.Value).Distinct().ToList();
            if (iptables.GetValueOrDefault(f.Definition.Family) is { Drop: not null } facts && !IptablesForwardMirror.HasAccept(f.Name, facts) && !missing.Contains(ForwardPart.Forward))
            {
                missing.Add(ForwardPart.Forward);
            }

            forwards.Add(new PortForward(f.Definition)
            {
                NetworkNamespace = _host.NetworkNamespace,
                Backend = Name,
                MissingRules = missing,
                DefinitionPartial = f.Missing.Contains("description"),
                Packets = (ulong)Math.Max(0, f.Packets),
                Bytes = (ulong)Math.Max(0, f.Bytes),
                Persisted = options.IsPersisted?.Invoke(f.Name) ?? false,
            });
        }

        return new NftablesSnapshot(state, forwards.OrderBy(f => f.Name, StringComparer.Ordinal).ToList()) { Iptables = iptables };
    }

    /// <summary>Runs one script as one transaction in the namespace (libnftables in-process, or <c>nft -f -</c>).</summary>
    /// <exception cref="CommandFailedException">NftCommandFailed, with the refused line of the script and the forward that wrote it.</exception>
    internal async Task ApplyAsync(string script, IReadOnlyList<string?> owners, CancellationToken ct)
    {
        (await _runner.RunAsync(script, ct).ConfigureAwait(false)).EnsureSuccess(script, owners);
    }

    private static ForwardPart? PartOf(string missing) => missing switch
    {
        "dnat" => ForwardPart.Dnat,
        "local" => ForwardPart.Local,
        "snat" or "masq" => ForwardPart.Snat,
        "hairpin" => ForwardPart.Hairpin,
        "fwd" => ForwardPart.Forward,
        _ => null,
    };
}
