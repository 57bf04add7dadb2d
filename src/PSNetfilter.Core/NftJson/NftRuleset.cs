namespace PSNetfilter.Core.NftJson;

/// <summary>The whole ruleset of one network namespace, read from <c>nft -j list ruleset</c>.</summary>
public sealed class NftRuleset
{
    private readonly Dictionary<(string Family, string Table, string Chain), List<NftRule>> _rules;
    private readonly Dictionary<(string Family, string Table, string Name), NftChain> _chains;
    private readonly Dictionary<(string Family, string Table, string Name), NftSet> _sets;

    public NftRuleset(string version, IReadOnlyList<NftTable> tables, IReadOnlyList<NftChain> chains, IReadOnlyList<NftRule> rules, IReadOnlyList<NftSet> sets)
    {
        Version = version;
        Tables = tables;
        Chains = chains;
        Rules = rules;
        Sets = sets;
        _chains = chains.GroupBy(c => (c.Family, c.Table, c.Name)).ToDictionary(g => g.Key, g => g.First());
        _sets = sets.GroupBy(s => (s.Family, s.Table, s.Name)).ToDictionary(g => g.Key, g => g.First());
        _rules = new();
        foreach (var r in rules)
        {
            var key = (r.Family, r.Table, r.Chain);
            if (!_rules.TryGetValue(key, out var list))
            {
                _rules[key] = list = new List<NftRule>();
            }

            list.Add(r);
        }
    }

    /// <summary>The name of the table the module's own nftables backend keeps its forwards in.</summary>
    public const string ModuleTable = "psnetfilter";

    /// <summary>ip/ip6 filter, nat, mangle, raw or security: the names iptables-nft gives its tables.</summary>
    public static bool IsIptablesTableName(string family, string table) =>
        family is "ip" or "ip6" && table is "filter" or "nat" or "mangle" or "raw" or "security";

    public static NftRuleset Empty { get; } = new(string.Empty, Array.Empty<NftTable>(), Array.Empty<NftChain>(), Array.Empty<NftRule>(), Array.Empty<NftSet>());

    /// <summary>The nft version that printed the ruleset (metainfo), empty when unknown.</summary>
    public string Version { get; }

    public IReadOnlyList<NftTable> Tables { get; }

    public IReadOnlyList<NftChain> Chains { get; }

    public IReadOnlyList<NftRule> Rules { get; }

    public IReadOnlyList<NftSet> Sets { get; }

    public NftChain? Chain(string family, string table, string name) =>
        _chains.TryGetValue((family, table, name), out var c) ? c : null;

    /// <summary>The rules of a chain in the order the kernel evaluates them.</summary>
    public IReadOnlyList<NftRule> RulesOf(NftChain chain) =>
        _rules.TryGetValue((chain.Family, chain.Table, chain.Name), out var list) ? list : Array.Empty<NftRule>();

    public NftSet? Set(string family, string table, string name) =>
        _sets.TryGetValue((family, table, name), out var s) ? s : null;

    /// <summary>A table of another program: neither one of iptables' own (read through iptables-save) nor the module's.</summary>
    public bool IsForeign(NftTable table) => table.Name != ModuleTable && !IsIptablesTable(table);

    /// <summary>
    /// True for the tables iptables-nft writes (ip/ip6 filter, nat, mangle, raw, security holding only the
    /// built-in chain names as base chains): they are read through iptables-save, not through nft.
    /// </summary>
    public bool IsIptablesTable(NftTable table)
    {
        if (!IsIptablesTableName(table.Family, table.Name))
        {
            return false;
        }

        return Chains.Where(c => c.Family == table.Family && c.Table == table.Name && c.IsBase)
            .All(c => c.Name is "PREROUTING" or "INPUT" or "FORWARD" or "OUTPUT" or "POSTROUTING");
    }
}
