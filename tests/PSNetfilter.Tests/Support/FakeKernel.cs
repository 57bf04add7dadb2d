using System.Text;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests.Support;

/// <summary>iptables-restore refused a payload line.</summary>
internal sealed class FakeRestoreException : Exception
{
    public FakeRestoreException(int line, string reason)
        : base($"iptables-restore: line {line} failed: {reason}")
    {
        Line = line;
    }

    public int Line { get; }
}

/// <summary>
/// A small model of one family's xtables state, as far as the module's payloads go: it applies
/// <c>iptables-restore --noflush</c> input with the kernel's checks (chain exists, target exists, position in
/// range, -X only on an empty unreferenced user chain, re-declaring a user chain flushes it), all or nothing,
/// and prints <c>iptables-save -c</c> text the way Golden/README.md describes (built-in chains first, user chains
/// sorted by byte value, rules grouped by chain, comments quoted, conntrack normalised).
/// </summary>
internal sealed class FakeKernel
{
    private static readonly string[] HookOrder = { "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING" };

    private static readonly Dictionary<string, string[]> Builtins = new(StringComparer.Ordinal)
    {
        ["filter"] = new[] { "INPUT", "FORWARD", "OUTPUT" },
        ["nat"] = new[] { "PREROUTING", "INPUT", "OUTPUT", "POSTROUTING" },
        ["mangle"] = new[] { "PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING" },
        ["raw"] = new[] { "PREROUTING", "OUTPUT" },
        ["security"] = new[] { "INPUT", "FORWARD", "OUTPUT" },
    };

    private List<Table> _tables = new();

    public FakeKernel(IpFamily family, string? saveText = null, bool normalize = true)
    {
        Family = family;
        Normalize = normalize;
        if (saveText is not null)
        {
            foreach (var t in IptablesSaveParser.Parse(saveText, family).Tables)
            {
                var table = GetOrAdd(_tables, t.Name);
                foreach (var c in t.Chains)
                {
                    var chain = table.Find(c.Name) ?? table.Add(c.Name, c.Policy);
                    chain.Policy = c.Policy;
                }

                foreach (var r in t.Rules)
                {
                    table.Find(r.Chain)!.Rules.Add(r.Spec);
                }
            }
        }
    }

    public IpFamily Family { get; }

    /// <summary>Store added rules the way iptables-save prints them back (quoted comments, normalised conntrack).</summary>
    public bool Normalize { get; }

    /// <summary>
    /// Commit each table at its COMMIT line, as iptables-restore does table by table: a failure in a later
    /// table leaves the earlier ones applied. Off: the whole payload is one transaction.
    /// </summary>
    public bool PerTableCommit { get; set; }

    /// <summary>Payload lines the "kernel" refuses (a missing match module, a rejected option...).</summary>
    public Func<string, bool>? Refuse { get; set; }

    /// <summary>How many payloads were applied.</summary>
    public int Applied { get; private set; }

    private sealed class Table
    {
        public Table(string name) => Name = name;

        public string Name { get; }

        public List<Chain> Chains { get; } = new();

        public Chain? Find(string name) => Chains.FirstOrDefault(c => c.Name == name);

        public Chain Add(string name, string policy)
        {
            var c = new Chain(name, policy);
            Chains.Add(c);
            return c;
        }

        public Table Clone()
        {
            var t = new Table(Name);
            foreach (var c in Chains)
            {
                var copy = t.Add(c.Name, c.Policy);
                copy.Rules.AddRange(c.Rules);
            }

            return t;
        }
    }

    private sealed class Chain
    {
        public Chain(string name, string policy)
        {
            Name = name;
            Policy = policy;
        }

        public string Name { get; }

        public string Policy { get; set; }

        public bool IsBuiltin => Policy != "-";

        public List<string> Rules { get; } = new();
    }

    private static Table GetOrAdd(List<Table> tables, string name)
    {
        var t = tables.FirstOrDefault(x => x.Name == name);
        if (t is null)
        {
            t = new Table(name);
            foreach (var b in Builtins.TryGetValue(name, out var list) ? list : Array.Empty<string>())
            {
                t.Add(b, "ACCEPT");
            }

            tables.Add(t);
        }

        return t;
    }

    /// <summary>Applies an iptables-restore --noflush payload; all or nothing.</summary>
    /// <exception cref="FakeRestoreException">A line the kernel or the tool would refuse.</exception>
    public void Apply(string payload)
    {
        var work = _tables.Select(t => t.Clone()).ToList();
        Table? table = null;
        var lineNo = 0;
        foreach (var raw in payload.Split('\n'))
        {
            lineNo++;
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (Refuse?.Invoke(line) == true)
            {
                throw new FakeRestoreException(lineNo, "refused");
            }

            if (line == "COMMIT")
            {
                table = table is null ? throw new FakeRestoreException(lineNo, "COMMIT outside a table") : null;
                if (PerTableCommit)
                {
                    _tables = work.Select(t => t.Clone()).ToList();
                }

                continue;
            }

            if (line.StartsWith('*'))
            {
                if (table is not null)
                {
                    throw new FakeRestoreException(lineNo, "table without COMMIT");
                }

                table = Builtins.ContainsKey(line[1..]) ? GetOrAdd(work, line[1..]) : throw new FakeRestoreException(lineNo, "unknown table");
                continue;
            }

            if (table is null)
            {
                throw new FakeRestoreException(lineNo, "no table");
            }

            var words = line.Split(' ');
            if (line.StartsWith(':'))
            {
                var name = words[0][1..];
                var existing = table.Find(name);
                if (existing is { IsBuiltin: true })
                {
                    existing.Policy = words[1];
                }
                else if (existing is not null)
                {
                    existing.Rules.Clear(); // --noflush still flushes a declared user chain
                }
                else
                {
                    table.Add(name, "-");
                }

                continue;
            }

            if (words.Length < 2)
            {
                throw new FakeRestoreException(lineNo, "bad command");
            }

            var chain = table.Find(words[1]) ?? throw new FakeRestoreException(lineNo, $"chain {words[1]} does not exist");
            var rest = string.Join(' ', words.Skip(2));
            switch (words[0])
            {
                case "-A":
                    chain.Rules.Add(Checked(table, rest, lineNo));
                    break;
                case "-I":
                    {
                        var pos = 1;
                        if (words.Length > 2 && int.TryParse(words[2], out var n))
                        {
                            pos = n;
                            rest = string.Join(' ', words.Skip(3));
                        }

                        if (pos < 1 || pos > chain.Rules.Count + 1)
                        {
                            throw new FakeRestoreException(lineNo, "index of insertion too big");
                        }

                        chain.Rules.Insert(pos - 1, Checked(table, rest, lineNo));
                        break;
                    }

                case "-D":
                    if (words.Length == 3 && int.TryParse(words[2], out var del))
                    {
                        if (del < 1 || del > chain.Rules.Count)
                        {
                            throw new FakeRestoreException(lineNo, "index of deletion too big");
                        }

                        chain.Rules.RemoveAt(del - 1);
                    }
                    else
                    {
                        var spec = Store(rest);
                        var at = chain.Rules.IndexOf(spec);
                        if (at < 0)
                        {
                            throw new FakeRestoreException(lineNo, "bad rule (does a matching rule exist in that chain?)");
                        }

                        chain.Rules.RemoveAt(at);
                    }

                    break;
                case "-X":
                    if (chain.IsBuiltin || chain.Rules.Count > 0)
                    {
                        throw new FakeRestoreException(lineNo, "Directory not empty / built-in chain");
                    }

                    if (table.Chains.Any(c => c.Rules.Any(r => Target(r) == chain.Name)))
                    {
                        throw new FakeRestoreException(lineNo, "Too many links");
                    }

                    table.Chains.Remove(chain);
                    break;
                default:
                    throw new FakeRestoreException(lineNo, "unknown command " + words[0]);
            }
        }

        if (table is not null)
        {
            throw new FakeRestoreException(lineNo, "no COMMIT");
        }

        _tables = work;
        Applied++;
    }

    private string Checked(Table table, string spec, int lineNo)
    {
        var target = Target(spec);
        if (target is not null && target.StartsWith("PSNF-", StringComparison.Ordinal) && table.Find(target) is null)
        {
            throw new FakeRestoreException(lineNo, $"Couldn't load target `{target}'");
        }

        return Store(spec);
    }

    private string Store(string spec) => Normalize ? SaveText.Normalize(spec) : spec;

    private static string? Target(string spec)
    {
        var words = spec.Split(' ');
        var j = Array.FindLastIndex(words, w => w is "-j" or "-g");
        return j >= 0 && j + 1 < words.Length ? words[j + 1] : null;
    }

    /// <summary>iptables-save -c (or without counters) of the current state.</summary>
    public string Save(bool counters = true)
    {
        var sb = new StringBuilder();
        foreach (var t in _tables)
        {
            sb.Append('*').Append(t.Name).Append('\n');
            var ordered = t.Chains.Where(c => c.IsBuiltin).OrderBy(c => Array.IndexOf(HookOrder, c.Name))
                .Concat(t.Chains.Where(c => !c.IsBuiltin).OrderBy(c => c.Name, StringComparer.Ordinal)).ToList();
            foreach (var c in ordered)
            {
                sb.Append(':').Append(c.Name).Append(' ').Append(c.Policy).Append(" [0:0]\n");
            }

            foreach (var c in ordered)
            {
                foreach (var r in c.Rules)
                {
                    sb.Append(counters ? "[0:0] " : string.Empty).Append("-A ").Append(c.Name).Append(' ').Append(r).Append('\n');
                }
            }

            sb.Append("COMMIT\n");
        }

        return sb.ToString();
    }

    /// <summary>The state parsed back, as the module would read it.</summary>
    public Ruleset Parse() => IptablesSaveParser.Parse(Save(), Family);

    /// <summary>Names of the module's chains that exist now.</summary>
    public IEnumerable<string> ModuleChains() =>
        _tables.SelectMany(t => t.Chains).Where(c => c.Name.StartsWith("PSNF-", StringComparison.Ordinal)).Select(c => c.Name);

    /// <summary>Adds rendered rules directly (chains, jumps at position 1, dispatch jumps), as a previous payload would have.</summary>
    public void Add(IEnumerable<PSNetfilter.Core.Backends.Iptables.RenderedRule> rules)
    {
        foreach (var r in rules)
        {
            var table = GetOrAdd(_tables, r.Table);
            var hook = PSNetfilter.Core.Backends.Iptables.RuleLayout.Hooks.Single(h => h.Table == r.Table && (r.Path.Count > 0 ? r.Path[0].Parent == h.Chain : r.Chain == h.Chain));
            if (table.Find(hook.Chain) is null)
            {
                table.Add(hook.Chain, "-");
                table.Find(hook.BuiltinChain)!.Rules.Insert(0, hook.JumpSpec);
            }

            foreach (var step in r.Path)
            {
                if (table.Find(step.Chain) is null)
                {
                    table.Add(step.Chain, "-");
                }

                var parent = table.Find(step.Parent)!;
                var spec = Store(step.Spec);
                if (!parent.Rules.Contains(spec))
                {
                    parent.Rules.Add(spec);
                }
            }

            table.Find(r.Chain)!.Rules.Add(Store(r.Spec));
        }
    }
}
