using System.Text.Json;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// The matches and the NAT statement of one of the table's per-forward rules, from its <c>nft -j</c> expressions:
/// each <c>==</c> match by what it looks at (<c>meta iifname</c>, <c>ip saddr</c>, <c>tcp dport</c>, <c>fib daddr</c>,
/// <c>ct original proto-dst</c>, ...), and the <c>dnat</c>/<c>snat</c>/<c>masquerade</c> statement.
/// </summary>
public sealed class NftRuleFields
{
    private readonly Dictionary<string, JsonElement> _matches = new(StringComparer.Ordinal);

    private NftRuleFields()
    {
    }

    /// <summary>dnat, snat, masquerade or null.</summary>
    public string? Nat { get; private set; }

    /// <summary>The NAT statement's object (family, addr, port), when it has one.</summary>
    public JsonElement? NatArgs { get; private set; }

    public static NftRuleFields Read(IReadOnlyList<JsonElement> expressions)
    {
        var f = new NftRuleFields();
        foreach (var e in expressions)
        {
            if (e.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            if (e.TryGetProperty("match", out var m) && m.TryGetProperty("left", out var left) && m.TryGetProperty("right", out var right)
                && (!m.TryGetProperty("op", out var op) || op.GetString() is "==" or "in"))
            {
                f._matches[Describe(left)] = right.Clone();
                continue;
            }

            foreach (var nat in new[] { "dnat", "snat", "masquerade" })
            {
                if (e.TryGetProperty(nat, out var args))
                {
                    f.Nat = nat;
                    f.NatArgs = args.ValueKind == JsonValueKind.Object ? args.Clone() : null;
                }
            }
        }

        return f;
    }

    /// <summary>The right side of a match on <paramref name="what"/> ("ip saddr", "meta iifname", "tcp dport", "fib daddr").</summary>
    public JsonElement? Match(string what) => _matches.TryGetValue(what, out var v) ? v : null;

    /// <summary>"ip saddr", "tcp dport", "meta iifname", "fib daddr", "ct original ip daddr", "ct status", ...</summary>
    private static string Describe(JsonElement left)
    {
        if (left.TryGetProperty("payload", out var p))
        {
            return Str(p, "protocol") + " " + Str(p, "field");
        }

        if (left.TryGetProperty("meta", out var meta))
        {
            return "meta " + Str(meta, "key");
        }

        if (left.TryGetProperty("fib", out var fib) && fib.TryGetProperty("flags", out var flags))
        {
            var names = flags.ValueKind == JsonValueKind.Array ? flags.EnumerateArray().Select(x => x.GetString()) : new[] { flags.GetString() };
            return "fib " + string.Join(' ', names);
        }

        if (left.TryGetProperty("ct", out var ct))
        {
            var dir = Str(ct, "dir");
            var family = Str(ct, "family");
            return string.Join(' ', new[] { "ct", dir, family, Str(ct, "key") }.Where(s => !string.IsNullOrEmpty(s)));
        }

        return left.GetRawText();
    }

    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : string.Empty;
}
