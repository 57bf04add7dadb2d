using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// Other programs' nftables tables that drop a forward's packets (<see cref="ForeignTableCheck"/>), and the
/// tagged accept rules -AcceptInOtherTables puts into hand-written ones: one nft transaction to add them, one to
/// remove them with their forward.
/// </summary>
public sealed class ForeignTableAccess
{
    private readonly NetfilterHost _host;
    private readonly IChangeObserver _observer;
    private readonly GatewayFacts _facts;

    public ForeignTableAccess(NetfilterHost host, IChangeObserver observer, GatewayFacts facts)
    {
        _host = host;
        _observer = observer;
        _facts = facts;
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
    public async Task<IReadOnlyList<PortForwardFinding>> CheckAsync(IReadOnlyList<PortForward> forwards, bool acceptInOtherTables, CancellationToken ct)
    {
        if (forwards.Count == 0 || !await _host.HasForeignNftTablesAsync(ct).ConfigureAwait(false)
            || await _host.ListNftRulesetAsync(ct).ConfigureAwait(false) is not { } nftables)
        {
            return Array.Empty<PortForwardFinding>();
        }

        var findings = await EvaluateForeignTablesAsync(forwards, nftables, ct).ConfigureAwait(false);
        var byName = forwards.ToDictionary(f => f.Name, PortForwardNames.Comparer);
        var open = acceptInOtherTables
            ? findings.Where(x => ForeignTableCheck.CanOpen(x) && x.Forward is not null && byName.ContainsKey(x.Forward)).ToList()
            : new List<PortForwardFinding>();
        if (open.Count == 0)
        {
            return findings;
        }

        var script = new System.Text.StringBuilder(AcceptRuleDeletions(nftables, open.Select(x => x.Forward!).ToList()));
        foreach (var x in open)
        {
            script.Append("insert rule ").Append(x.Table).Append(' ').Append(x.Chain).Append(' ').Append(ForeignTableCheck.AcceptRule(byName[x.Forward!])).Append('\n');
        }

        await _host.ApplyNftScriptAsync(script.ToString(), ct).ConfigureAwait(false);
        foreach (var x in open)
        {
            _observer.Verbose($"Accepted '{x.Forward}' in table {x.Table}, chain {x.Chain} (rule tagged {ForeignTableCheck.AcceptTag(x.Forward!)}).");
        }

        var after = await _host.ListNftRulesetAsync(ct).ConfigureAwait(false) ?? nftables;
        return await EvaluateForeignTablesAsync(forwards, after, ct).ConfigureAwait(false);
    }

    private async Task<IReadOnlyList<PortForwardFinding>> EvaluateForeignTablesAsync(IReadOnlyList<PortForward> forwards, NftJson.NftRuleset nftables, CancellationToken ct)
    {
        var devices = await _facts.RouteDevicesAsync(forwards, ct).ConfigureAwait(false);
        var gateway = forwards.Any(f => f.ExternalAddress is not null)
            ? await _facts.InventoryAsync("the interface the clients' packets arrive on is not known", ct).ConfigureAwait(false)
            : null;
        return forwards.SelectMany(f => ForeignTableCheck.Evaluate(f, nftables, devices.GetValueOrDefault(f.InternalAddress), gateway?.DeviceOf(f.ExternalAddress)))
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
        var tags = names.Select(ForeignTableCheck.AcceptTag).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var sb = new System.Text.StringBuilder();
        foreach (var r in nftables.Rules.Where(r => r.Comment is { } c && tags.Contains(c)))
        {
            sb.Append("delete rule ").Append(r.Family).Append(' ').Append(r.Table).Append(' ').Append(r.Chain).Append(" handle ").Append(r.Handle.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }

        return sb.ToString();
    }
}
