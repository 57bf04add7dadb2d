using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// The FORWARD accepts the nftables backend keeps in iptables' filter table. An accept in
/// <c>table inet psnetfilter</c> ends only that table: where iptables' filter FORWARD drops (a policy of DROP set
/// by Docker, started with forwarding off, or by ufw; DROP or REJECT rules), a forward of this backend carries
/// nothing, while the iptables backend's forwards do, since their accept sits in that very chain. So where that
/// chain drops, the forward's accept is written there too, laid out exactly as the iptables backend lays out its
/// FORWARD part (<see cref="RuleLayout.RenderForwardMirror"/>: PSNF-FORWARD, its dispatch tree, the jump at the
/// top of FORWARD) and tagged <c>psnf:v1:NAME:nftfwd</c>, which the iptables backend does not read as a forward of
/// its own. Where iptables' FORWARD does not drop, nothing is written to iptables: a pure nftables host stays pure.
/// </summary>
internal sealed class IptablesForwardMirror
{
    private static readonly IpFamily[] Families = { IpFamily.IPv4, IpFamily.IPv6 };

    private readonly NetfilterHost _host;

    public IptablesForwardMirror(NetfilterHost host)
    {
        _host = host;
        Tools = new IptablesTools(host);
    }

    /// <summary>The tools the iptables backend uses (iptables-nft or legacy, detected once per process).</summary>
    public IptablesTools Tools { get; }

    /// <summary>
    /// iptables' filter table of each of <paramref name="families"/> where its FORWARD chain exists: told for
    /// iptables-nft by one in-process netlink listing of the family's chains, so a host without that chain runs no
    /// iptables-save; a family without it, or a host without iptables, is left out.
    /// </summary>
    public async Task<IReadOnlyDictionary<IpFamily, Facts>> ReadAsync(IEnumerable<IpFamily> families, CancellationToken ct)
    {
        var wanted = families.Distinct().ToList();
        var read = new Dictionary<IpFamily, Facts>();
        if (wanted.Count == 0)
        {
            return read;
        }

        IptablesToolset toolset;
        try
        {
            toolset = await Tools.GetToolsetAsync(ct).ConfigureAwait(false);
        }
        catch (NetfilterException ex) when (ex.ErrorId == "ToolNotInstalled")
        {
            return read; // no iptables: nothing can drop there
        }

        foreach (var family in wanted)
        {
            if (toolset.Kind == IptablesBackendKind.Nft && !await HasForwardChainAsync(family, ct).ConfigureAwait(false))
            {
                continue;
            }

            var ruleset = await Tools.SaveAsync(family, ct).ConfigureAwait(false);
            if (ruleset.GetTable("filter")?.GetChain("FORWARD") is null)
            {
                continue;
            }

            read[family] = new Facts(ruleset, ForwardReader.Read(ruleset, _host.NetworkNamespace), DropOf(ruleset), $"{family}, {toolset.Describe()}");
        }

        return read;
    }

    /// <summary>
    /// After the nftables transaction of a change: removes the accepts of the forwards it removed or replaced
    /// (<paramref name="gone"/>), and writes one for each added forward whose family's FORWARD drops. One
    /// iptables-restore per family, planned on a fresh read (the change holds the namespace lock; another backend
    /// of the set may have written since the snapshot). A refused restore is reported to <paramref name="observer"/>:
    /// the forwards are in nftables, and Test-PortForward names what their accept in iptables lacks.
    /// </summary>
    public async Task ApplyAsync(IReadOnlyList<PortForwardDefinition> added, IReadOnlyCollection<string> gone, IChangeObserver observer, CancellationToken ct)
    {
        var facts = await ReadAsync(Families, ct).ConfigureAwait(false);
        foreach (var (family, f) in facts)
        {
            var builder = new ChangePlanBuilder(f.Ruleset, f.State);
            foreach (var name in gone.Concat(added.Select(a => a.Name)).Where(n => f.State.MirrorsOf.ContainsKey(n)))
            {
                builder.RemoveMirror(name);
            }

            if (f.Drop is not null)
            {
                foreach (var d in added.Where(a => a.Family == family))
                {
                    builder.AddMirror(d);
                }
            }

            var payload = builder.Finish();
            if (payload.IsEmpty)
            {
                continue;
            }

            observer.Debug($"Plan ({family}): the FORWARD accepts of nftables forwards in iptables' filter table ({f.Drop ?? "it drops nothing now"}), an iptables-restore payload of {payload.LineCount} line(s).");
            try
            {
                await Tools.RestoreAsync(payload, CancellationToken.None).ConfigureAwait(false);
            }
            catch (CommandFailedException ex)
            {
                observer.Failed(ex);
            }
        }
    }

    /// <summary>
    /// IptablesForwardDrop: iptables' filter FORWARD drops and a forward of this backend has no reachable accept
    /// there (it was made before the drop came: Docker or ufw started later, or the rule was deleted).
    /// </summary>
    public static PortForwardFinding? Check(PortForward forward, Facts? facts)
    {
        if (facts?.Drop is not { } drop || HasAccept(forward.Name, facts))
        {
            return null;
        }

        return new(forward.Name, FindingSeverity.Error, CheckName,
            $"iptables' filter FORWARD chain ({facts.Tool}) drops: {drop}; this forward's accept is not in it.",
            "Every table on the forward hook sees the packet: the accept in table inet psnetfilter ends only that table, and the drop in iptables' FORWARD (Docker started with forwarding off, ufw's default forward policy, a hand-written rule) is final. The nftables backend writes the forward's accept into FORWARD (chain PSNF-FORWARD, tagged psnf:v1:NAME:nftfwd) when the forward is made where FORWARD drops; this one was made before the drop came, or the rule was deleted.",
            MissingForwardCheck.Repair(forward) + " -Backend Nftables -Force puts the accept into iptables' FORWARD.");
    }

    public const string CheckName = "IptablesForwardDrop";

    /// <summary>Whether the forward's accept is in iptables' FORWARD and reachable.</summary>
    public static bool HasAccept(string name, Facts facts) =>
        facts.State.MirrorsOf.ContainsKey(name) && !facts.State.UnreachableMirrors.Contains(name);

    /// <summary>
    /// Why filter/FORWARD drops a forward's connection: a DROP or REJECT rule reached from FORWARD (module chains
    /// left out), or its policy; null when it drops nothing, or when it accepts every DNATed connection
    /// (<c>-m conntrack --ctstate ...DNAT... -j ACCEPT</c>, as firewalld's iptables backend writes) before anything
    /// that drops. Other matches are not evaluated: a drop that cannot match the forward's traffic still counts,
    /// and then its accept is written where it was not needed, which changes nothing for any packet.
    /// </summary>
    internal static string? DropOf(Ruleset ruleset)
    {
        var filter = ruleset.Table("filter");
        foreach (var rule in filter.Rules.Where(r => r.Chain == "FORWARD"))
        {
            if (AcceptsDnat(rule.Spec))
            {
                return null;
            }

            var dropping = filter.RulesReachedFrom(new[] { rule })
                .FirstOrDefault(r => !r.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal) && RuleTokenizer.JumpTarget(r.Spec) is "DROP" or "REJECT");
            if (dropping is not null)
            {
                return $"rule -A {dropping.Chain} {dropping.Spec}";
            }
        }

        var policy = filter.GetChain("FORWARD")?.Policy;
        return policy is "DROP" or "REJECT" ? $"its policy is {policy}" : null;
    }

    /// <summary><c>-m conntrack --ctstate LIST -j ACCEPT</c> with DNAT in LIST and no other match.</summary>
    private static bool AcceptsDnat(string spec)
    {
        var t = RuleTokenizer.Split(spec);
        return t.Count == 6 && t[0] == "-m" && t[1] == "conntrack" && t[2] == "--ctstate" && t[3].Split(',').Contains("DNAT") && t[4] == "-j" && t[5] == "ACCEPT";
    }

    private async Task<bool> HasForwardChainAsync(IpFamily family, CancellationToken ct)
    {
        try
        {
            var chains = await _host.Kernel.ListChainsAsync(_host.NetworkNamespace, family).WaitAsync(ct).ConfigureAwait(false);
            return chains.Any(c => c.Table == "filter" && c.Chain == "FORWARD");
        }
        catch (NetfilterException ex)
        {
            _host.Log($"{ex.Message} Reading the {family} filter table with iptables-save instead.");
            return true;
        }
    }

    /// <summary>One family's iptables rules, what they hold of this backend (<see cref="OwnedState.MirrorsOf"/>) and why FORWARD drops (null: it does not).</summary>
    public sealed record Facts(Ruleset Ruleset, OwnedState State, string? Drop, string Tool);
}
