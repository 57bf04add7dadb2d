using System.Text.Json;

namespace PSNetfilter.Core.NftJson;

/// <summary>
/// Walks an nftables ruleset with a packet whose fields are partly unknown (three-valued logic): for every base
/// chain of any table on the packet's hook and family, the verdict the kernel would reach, through jumps, gotos
/// and verdict maps. Matches it does not model (fib, limit, xt matches, marks, ...) are unknown, which makes a
/// later verdict uncertain rather than wrong.
/// </summary>
public sealed partial class NftEvaluator
{
    private const int MaxDepth = 16;
    private readonly NftRuleset _ruleset;

    public NftEvaluator(NftRuleset ruleset)
    {
        _ruleset = ruleset;
    }

    /// <summary>
    /// The base chains on <paramref name="packet"/>'s hook in its family (ip or ip6, and inet), ordered by priority,
    /// leaving out the tables <paramref name="skipTable"/> names (iptables' own tables, the module's table).
    /// </summary>
    public IEnumerable<NftChain> BaseChains(NftPacket packet, Func<NftTable, bool> skipTable)
    {
        var family = packet.Family == IpFamily.IPv4 ? "ip" : "ip6";
        var skipped = _ruleset.Tables.Where(skipTable).Select(t => (t.Family, t.Name)).ToHashSet();
        return _ruleset.Chains
            .Where(c => c.IsBase && c.Hook == packet.Hook && (c.Family == family || c.Family == "inet") && !skipped.Contains((c.Family, c.Table)))
            .OrderBy(c => c.Priority ?? 0);
    }

    public NftChainVerdict Evaluate(NftChain baseChain, NftPacket packet)
    {
        var ctx = new Walk(packet);
        var r = Chain(baseChain, ctx, 0);
        if (r.Kind == Step.Accept || r.Kind == Step.Drop)
        {
            return new NftChainVerdict(baseChain, r.Kind == Step.Accept ? NftOutcome.Accept : NftOutcome.Drop, ctx.Certain, r.Chain!, r.Rule, r.Reject) { Depends = ctx.Depends };
        }

        var drop = string.Equals(baseChain.Policy, "drop", StringComparison.Ordinal);
        return new NftChainVerdict(baseChain, drop ? NftOutcome.Drop : NftOutcome.Accept, ctx.Certain, baseChain, null, false) { Depends = ctx.Depends };
    }

    private enum Step
    {
        Next,
        Return,
        Accept,
        Drop,
    }

    private readonly record struct Result(Step Kind, NftChain? Chain = null, NftRule? Rule = null, bool Reject = false);

    private sealed class Walk
    {
        public Walk(NftPacket packet) => Packet = packet;

        public NftPacket Packet { get; }

        public bool Certain { get; set; } = true;

        public List<string> Depends { get; } = new();

        public void Uncertain(NftRule rule)
        {
            Certain = false;
            var text = NftRuleRenderer.Render(rule);
            if (!Depends.Contains(text))
            {
                Depends.Add(text);
            }
        }
    }

    private Result Chain(NftChain chain, Walk ctx, int depth)
    {
        if (depth > MaxDepth)
        {
            return new Result(Step.Return);
        }

        foreach (var rule in _ruleset.RulesOf(chain))
        {
            var r = Rule(chain, rule, rule.Expressions, ctx, depth, Tri.True);
            if (r.Kind != Step.Next)
            {
                return r;
            }
        }

        return new Result(Step.Return);
    }

    /// <summary>Runs one rule's statements (or, for a verdict map element, just its verdict) under <paramref name="cond"/>.</summary>
    private Result Rule(NftChain chain, NftRule rule, IReadOnlyList<JsonElement> statements, Walk ctx, int depth, Tri cond)
    {
        foreach (var stmt in statements)
        {
            if (stmt.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            foreach (var p in stmt.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "match":
                        cond = cond.And(Match(p.Value, ctx.Packet, chain));
                        if (cond == Tri.False)
                        {
                            return new Result(Step.Next);
                        }

                        break;
                    case "counter":
                    case "log":
                    case "comment":
                    case "mangle":
                    case "notrack":
                    case "set":
                    case "flow":
                    case "ct helper":
                    case "ct timeout":
                    case "ct expectation":
                        break;
                    case "accept":
                    case "dnat":
                    case "snat":
                    case "masquerade":
                    case "redirect":
                        return Verdict(new Result(Step.Accept, chain, rule), cond, rule, ctx);
                    case "drop":
                        return Verdict(new Result(Step.Drop, chain, rule), cond, rule, ctx);
                    case "reject":
                        return Verdict(new Result(Step.Drop, chain, rule, Reject: true), cond, rule, ctx);
                    case "return":
                        return Verdict(new Result(Step.Return), cond, rule, ctx);
                    case "continue":
                        return new Result(Step.Next);
                    case "jump":
                    case "goto":
                        return Jump(chain, rule, p.Value.GetProperty("target").GetString()!, p.Name == "goto", cond, ctx, depth);
                    case "vmap":
                        return VerdictMap(chain, rule, p.Value, cond, ctx, depth);
                    default:
                        // A statement this model does not know (limit, quota, xt, queue, ...): it may stop the rule.
                        cond = cond.And(Tri.Unknown);
                        break;
                }
            }
        }

        return new Result(Step.Next);
    }

    private static Result Verdict(Result verdict, Tri cond, NftRule rule, Walk ctx)
    {
        if (cond == Tri.True)
        {
            return verdict;
        }

        // Unknown: the packet may stop here. A possible accept (or return) makes what follows uncertain; a possible
        // drop is not taken as the verdict (the walk goes on as if it did not match).
        if (verdict.Kind is Step.Accept or Step.Return)
        {
            ctx.Uncertain(rule);
        }

        return new Result(Step.Next);
    }

    private Result Jump(NftChain chain, NftRule rule, string target, bool isGoto, Tri cond, Walk ctx, int depth)
    {
        var next = _ruleset.Chain(chain.Family, chain.Table, target);
        if (next is null)
        {
            return new Result(Step.Next);
        }

        if (cond == Tri.True)
        {
            var r = Chain(next, ctx, depth + 1);
            return r.Kind == Step.Return ? new Result(isGoto ? Step.Return : Step.Next) : r;
        }

        // Unknown whether the jump is taken: an accept inside it makes the rest uncertain, a drop is not the verdict.
        var probe = new Walk(ctx.Packet);
        var inner = Chain(next, probe, depth + 1);
        if (inner.Kind == Step.Accept || inner.Kind == Step.Return || !probe.Certain)
        {
            ctx.Uncertain(rule);
        }

        return new Result(Step.Next);
    }

    private Result VerdictMap(NftChain chain, NftRule rule, JsonElement vmap, Tri cond, Walk ctx, int depth)
    {
        var elements = Elements(vmap.GetProperty("data"), chain);
        if (elements is null)
        {
            ctx.Uncertain(rule);
            return new Result(Step.Next);
        }

        var key = Left(vmap.GetProperty("key"), ctx.Packet, chain);
        if (key.Mismatch)
        {
            return new Result(Step.Next);
        }

        foreach (var el in elements)
        {
            if (el.ValueKind != JsonValueKind.Array || el.GetArrayLength() != 2)
            {
                continue;
            }

            var hit = cond.And(key.IsUnknown ? Tri.Unknown : Member(key, el[0], chain));
            if (hit == Tri.False)
            {
                continue;
            }

            var r = Rule(chain, rule, new[] { el[1] }, ctx, depth, hit);
            if (hit == Tri.True)
            {
                return r;
            }
        }

        return new Result(Step.Next);
    }

    // ---- matches ----

}
