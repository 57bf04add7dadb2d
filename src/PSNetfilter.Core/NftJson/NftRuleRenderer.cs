using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PSNetfilter.Core.NftJson;

/// <summary>
/// Renders a rule's JSON statements back into nft's own syntax, close to what <c>nft list ruleset</c> prints, so a
/// finding can quote the rule. Statements it does not know are shown by their JSON name.
/// </summary>
public static class NftRuleRenderer
{
    public static string Render(NftRule rule)
    {
        var sb = new StringBuilder();
        foreach (var stmt in rule.Expressions)
        {
            var text = Statement(stmt);
            if (text.Length == 0)
            {
                continue;
            }

            if (sb.Length > 0)
            {
                sb.Append(' ');
            }

            sb.Append(text);
        }

        if (rule.Comment is { } c)
        {
            sb.Append(" comment \"").Append(c).Append('"');
        }

        return sb.ToString();
    }

    public static string Statement(JsonElement stmt)
    {
        if (stmt.ValueKind != JsonValueKind.Object)
        {
            return stmt.ToString();
        }

        foreach (var p in stmt.EnumerateObject())
        {
            var v = p.Value;
            switch (p.Name)
            {
                case "match":
                    var left = Expr(v.GetProperty("left"));
                    var op = v.TryGetProperty("op", out var o) ? o.GetString() : "==";
                    var right = Value(v.GetProperty("right"), QuotesStrings(v.GetProperty("left")));
                    return op is "==" or "in" ? $"{left} {right}" : $"{left} {op} {right}";
                case "accept":
                case "drop":
                case "continue":
                case "return":
                    return p.Name;
                case "jump":
                case "goto":
                    return $"{p.Name} {v.GetProperty("target").GetString()}";
                case "reject":
                    return v.ValueKind == JsonValueKind.Object && v.TryGetProperty("expr", out var why)
                        ? $"reject with {(v.TryGetProperty("type", out var t) ? t.GetString() : "icmp")} {why.GetString()}"
                        : "reject";
                case "counter":
                    return "counter";
                case "log":
                    return "log";
                case "vmap":
                    return $"{Expr(v.GetProperty("key"))} vmap {Value(v.GetProperty("data"), QuotesStrings(v.GetProperty("key")))}";
                case "dnat":
                case "snat":
                    return v.ValueKind == JsonValueKind.Object && v.TryGetProperty("addr", out var addr)
                        ? $"{p.Name} to {Value(addr, false)}{(v.TryGetProperty("port", out var port) ? ":" + Value(port, false) : string.Empty)}"
                        : p.Name;
                case "masquerade":
                case "redirect":
                case "notrack":
                    return p.Name;
                case "xt":
                    return $"xt {(v.TryGetProperty("type", out var xt) ? xt.GetString() : string.Empty)} {(v.TryGetProperty("name", out var xn) ? xn.GetString() : string.Empty)}".TrimEnd();
                default:
                    return p.Name;
            }
        }

        return string.Empty;
    }

    /// <summary>The left side of a match: payload, meta, ct, fib or a concatenation of them.</summary>
    public static string Expr(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            return Value(e, false);
        }

        foreach (var p in e.EnumerateObject())
        {
            var v = p.Value;
            switch (p.Name)
            {
                case "payload":
                    return v.TryGetProperty("protocol", out var proto)
                        ? $"{proto.GetString()} {v.GetProperty("field").GetString()}"
                        : "payload";
                case "meta":
                    var key = v.GetProperty("key").GetString();
                    return key is "iifname" or "oifname" or "iif" or "oif" or "mark" ? key! : "meta " + key;
                case "ct":
                    var sb = new StringBuilder("ct");
                    if (v.TryGetProperty("dir", out var dir))
                    {
                        sb.Append(' ').Append(dir.GetString());
                    }

                    if (v.TryGetProperty("family", out var fam))
                    {
                        sb.Append(' ').Append(fam.GetString());
                    }

                    return sb.Append(' ').Append(v.GetProperty("key").GetString()).ToString();
                case "fib":
                    var flags = v.TryGetProperty("flags", out var f) ? string.Join(" . ", f.ValueKind == JsonValueKind.Array ? f.EnumerateArray().Select(x => x.GetString()) : new[] { f.GetString() }) : string.Empty;
                    return $"fib {flags} {(v.TryGetProperty("result", out var r) ? r.GetString() : string.Empty)}".Replace("  ", " ", StringComparison.Ordinal);
                case "concat":
                    return string.Join(" . ", v.EnumerateArray().Select(Expr));
                default:
                    return p.Name;
            }
        }

        return string.Empty;
    }

    private static bool QuotesStrings(JsonElement left) =>
        left.ValueKind == JsonValueKind.Object && left.TryGetProperty("meta", out var m)
        && m.TryGetProperty("key", out var k) && k.GetString() is "iifname" or "oifname" or "iif" or "oif";

    private static string Value(JsonElement v, bool quote)
    {
        switch (v.ValueKind)
        {
            case JsonValueKind.String:
                var s = v.GetString()!;
                return quote && !s.StartsWith('@') ? $"\"{s}\"" : s;
            case JsonValueKind.Number:
                return v.GetRawText();
            case JsonValueKind.Array:
                return string.Join(",", v.EnumerateArray().Select(x => Value(x, quote)));
            case JsonValueKind.Object:
                foreach (var p in v.EnumerateObject())
                {
                    switch (p.Name)
                    {
                        case "set":
                            var items = p.Value.ValueKind == JsonValueKind.Array
                                ? p.Value.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Array && x.GetArrayLength() == 2
                                    ? Value(x[0], quote) + " : " + (x[1].ValueKind == JsonValueKind.Object ? Statement(x[1]) : Value(x[1], quote))
                                    : Value(x, quote))
                                : new[] { Value(p.Value, quote) };
                            return "{ " + string.Join(", ", items) + " }";
                        case "prefix":
                            return $"{p.Value.GetProperty("addr").GetString()}/{p.Value.GetProperty("len").GetInt32().ToString(CultureInfo.InvariantCulture)}";
                        case "range":
                            return $"{Value(p.Value[0], quote)}-{Value(p.Value[1], quote)}";
                        case "elem":
                            return Value(p.Value.GetProperty("val"), quote);
                        case "concat":
                            return string.Join(" . ", p.Value.EnumerateArray().Select(x => Value(x, quote)));
                        default:
                            return Expr(v);
                    }
                }

                return "{}";
            default:
                return v.GetRawText();
        }
    }
}
