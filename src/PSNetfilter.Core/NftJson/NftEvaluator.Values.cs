using System.Net;
using System.Text.Json;

namespace PSNetfilter.Core.NftJson;

/// <summary>How a match expression is decided for a packet: the values of its left side (payload, meta, ct) and their comparison with the right side.</summary>
public sealed partial class NftEvaluator
{
    private Tri Match(JsonElement m, NftPacket packet, NftChain chain)
    {
        var op = m.TryGetProperty("op", out var o) ? o.GetString() : "==";
        var leftJson = m.GetProperty("left");
        var left = Left(leftJson, packet, chain);
        if (left.Mismatch)
        {
            return Tri.False;
        }

        if (left.IsUnknown)
        {
            return Tri.Unknown;
        }

        var right = m.GetProperty("right");
        switch (op)
        {
            case "==":
            case "in":
                return Member(left, right, chain);
            case "!=":
                return Member(left, right, chain).Not();
            case "<":
            case ">":
            case "<=":
            case ">=":
                if (left.Number is { } n && right.ValueKind == JsonValueKind.Number)
                {
                    var r = right.GetInt64();
                    var ok = op switch { "<" => n < r, ">" => n > r, "<=" => n <= r, _ => n >= r };
                    return ok ? Tri.True : Tri.False;
                }

                return Tri.Unknown;
            default:
                return Tri.Unknown;
        }
    }

    /// <summary>A packet field: known (number, address, text or flags), unknown, or absent from this packet (a tcp match on udp).</summary>
    private sealed record Value(long? Number = null, IPAddress? Address = null, string? Text = null, IReadOnlySet<string>? Flags = null, IReadOnlySet<string>? KnownFlags = null, IReadOnlyList<Value>? Parts = null, bool Mismatch = false)
    {
        public static readonly Value Unknown = new();

        public bool IsUnknown => !Mismatch && Number is null && Address is null && Text is null && Flags is null && Parts is null;
    }

    private Value Left(JsonElement e, NftPacket packet, NftChain chain)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            return Value.Unknown;
        }

        foreach (var p in e.EnumerateObject())
        {
            var v = p.Value;
            switch (p.Name)
            {
                case "payload":
                    return Payload(v, packet);
                case "meta":
                    return Meta(v.GetProperty("key").GetString(), packet);
                case "ct":
                    if (v.TryGetProperty("dir", out var dir))
                    {
                        return CtTuple(dir.GetString(), v.GetProperty("key").GetString(), v.TryGetProperty("family", out var fam) ? fam.GetString() : null, packet);
                    }

                    return v.GetProperty("key").GetString() switch
                    {
                        "state" => new Value(Flags: new HashSet<string> { packet.CtState }, KnownFlags: null),
                        "status" => new Value(Flags: packet.CtStatus.ToHashSet(), KnownFlags: NftPacket.ModelledStatus),
                        "direction" => new Value(Text: packet.Direction == NftDirection.Original ? "original" : "reply"),
                        _ => Value.Unknown,
                    };
                case "concat":
                    var parts = v.EnumerateArray().Select(x => Left(x, packet, chain)).ToList();
                    if (parts.Any(x => x.Mismatch))
                    {
                        return new Value(Mismatch: true);
                    }

                    return parts.Any(x => x.IsUnknown) ? Value.Unknown : new Value(Parts: parts);
                default:
                    return Value.Unknown;
            }
        }

        return Value.Unknown;
    }

    /// <summary><c>ct original ip daddr</c>, <c>ct reply proto-src</c> and the like: the conntrack tuple.</summary>
    private static Value CtTuple(string? dir, string? key, string? family, NftPacket packet)
    {
        if (key is null)
        {
            return Value.Unknown;
        }

        // nft 1.0.x prints "ip daddr" as the key; older JSON puts the family in its own field.
        var parts = key.Split(' ');
        if (parts.Length == 2)
        {
            family = parts[0];
            key = parts[1];
        }

        if (family is not null && (family == "ip") != (packet.Family == IpFamily.IPv4))
        {
            return new Value(Mismatch: true);
        }

        IPAddress? address = (dir, key) switch
        {
            ("original", "daddr") => packet.CtOriginalDestination,
            ("reply", "saddr") => packet.CtReplySource,
            _ => null,
        };
        if (address is not null)
        {
            return new Value(Address: address);
        }

        int? port = (dir, key) switch
        {
            ("original", "proto-dst") => packet.CtOriginalDestinationPort,
            ("reply", "proto-src") => packet.CtReplySourcePort,
            _ => null,
        };
        return port is { } n ? new Value(Number: n) : Value.Unknown;
    }

    private static Value Payload(JsonElement v, NftPacket packet)
    {
        if (!v.TryGetProperty("protocol", out var protoJson))
        {
            return Value.Unknown;
        }

        var proto = protoJson.GetString();
        var field = v.GetProperty("field").GetString();
        var l4 = packet.Protocol == Protocol.Tcp ? "tcp" : "udp";
        switch (proto)
        {
            case "ip":
            case "ip6":
                if ((proto == "ip") != (packet.Family == IpFamily.IPv4))
                {
                    return new Value(Mismatch: true);
                }

                return field switch
                {
                    "saddr" => packet.Source is { } s ? new Value(Address: s) : Value.Unknown,
                    "daddr" => packet.Destination is { } d ? new Value(Address: d) : Value.Unknown,
                    "protocol" or "nexthdr" => new Value(Text: l4),
                    _ => Value.Unknown,
                };
            case "tcp":
            case "udp":
            case "th":
                if (proto != "th" && proto != l4)
                {
                    return new Value(Mismatch: true);
                }

                return field switch
                {
                    "sport" => packet.SourcePort is { } sp ? new Value(Number: sp) : Value.Unknown,
                    "dport" => packet.DestinationPort is { } dp ? new Value(Number: dp) : Value.Unknown,
                    _ => Value.Unknown,
                };
            case "icmp":
            case "icmpv6":
            case "sctp":
            case "dccp":
            case "udplite":
            case "esp":
            case "ah":
            case "comp":
            case "igmp":
                return new Value(Mismatch: true);
            default:
                return Value.Unknown;
        }
    }

    private static Value Meta(string? key, NftPacket packet)
    {
        var l4 = packet.Protocol == Protocol.Tcp ? "tcp" : "udp";
        return key switch
        {
            "l4proto" => new Value(Text: l4),
            "nfproto" => new Value(Text: packet.Family == IpFamily.IPv4 ? "ipv4" : "ipv6"),
            "protocol" => new Value(Text: packet.Family == IpFamily.IPv4 ? "ip" : "ip6"),
            "iifname" or "iif" => packet.InInterface is { } i ? new Value(Text: i) : Value.Unknown,
            "oifname" or "oif" => packet.OutInterface is { } o ? new Value(Text: o) : Value.Unknown,
            _ => Value.Unknown,
        };
    }

    /// <summary>Whether <paramref name="left"/> is one of the values <paramref name="right"/> stands for.</summary>
    private Tri Member(Value left, JsonElement right, NftChain chain)
    {
        if (left.Flags is not null)
        {
            var wanted = FlagWords(right);
            if (wanted is null)
            {
                return Tri.Unknown;
            }

            if (wanted.Any(left.Flags.Contains))
            {
                return Tri.True;
            }

            // Flags the model does not decide may be set.
            return left.KnownFlags is null || wanted.All(left.KnownFlags.Contains) ? Tri.False : Tri.Unknown;
        }

        var elements = Elements(right, chain);
        if (elements is null)
        {
            return Tri.Unknown;
        }

        var result = Tri.False;
        foreach (var el in elements)
        {
            result = result.Or(Element(left, el.ValueKind == JsonValueKind.Array && el.GetArrayLength() == 2 ? el[0] : el));
            if (result == Tri.True)
            {
                break;
            }
        }

        return result;
    }

    private static HashSet<string>? FlagWords(JsonElement right) => right.ValueKind switch
    {
        JsonValueKind.String => new HashSet<string> { right.GetString()! },
        JsonValueKind.Array => right.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToHashSet(),
        JsonValueKind.Object when right.TryGetProperty("set", out var s) => FlagWords(s),
        _ => null,
    };

    /// <summary>The values a right-hand side lists: one literal, an anonymous set, or a named set (<c>@name</c>).</summary>
    private IReadOnlyList<JsonElement>? Elements(JsonElement right, NftChain chain)
    {
        if (right.ValueKind == JsonValueKind.String && right.GetString() is { } s && s.StartsWith('@'))
        {
            return _ruleset.Set(chain.Family, chain.Table, s[1..])?.Elements;
        }

        if (right.ValueKind == JsonValueKind.Object && right.TryGetProperty("set", out var set))
        {
            return set.ValueKind == JsonValueKind.Array ? set.EnumerateArray().ToList() : new[] { set };
        }

        return new[] { right };
    }

    private static Tri Element(Value left, JsonElement el)
    {
        if (el.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in el.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "elem":
                        return p.Value.TryGetProperty("val", out var val) ? Element(left, val) : Tri.Unknown;
                    case "prefix":
                        return left.Address is { } a && IPAddress.TryParse(p.Value.GetProperty("addr").GetString(), out var net)
                            ? (net.AddressFamily == a.AddressFamily && new IPNetwork(net, p.Value.GetProperty("len").GetInt32()).Contains(a) ? Tri.True : Tri.False)
                            : Tri.Unknown;
                    case "range":
                        return InRange(left, p.Value[0], p.Value[1]);
                    case "concat":
                        if (left.Parts is null || left.Parts.Count != p.Value.GetArrayLength())
                        {
                            return Tri.Unknown;
                        }

                        var all = Tri.True;
                        for (var i = 0; i < left.Parts.Count; i++)
                        {
                            all = all.And(Element(left.Parts[i], p.Value[i]));
                        }

                        return all;
                    default:
                        return Tri.Unknown;
                }
            }

            return Tri.Unknown;
        }

        return Literal(left, el);
    }

    private static Tri Literal(Value left, JsonElement el)
    {
        if (left.Number is { } n)
        {
            return el.ValueKind == JsonValueKind.Number ? (el.GetInt64() == n ? Tri.True : Tri.False) : Tri.Unknown;
        }

        if (left.Address is { } a)
        {
            return el.ValueKind == JsonValueKind.String && IPAddress.TryParse(el.GetString(), out var b)
                ? (a.Equals(b) ? Tri.True : Tri.False)
                : Tri.Unknown;
        }

        if (left.Text is { } t)
        {
            if (el.ValueKind == JsonValueKind.Number)
            {
                // meta l4proto 6 / nfproto 2
                var num = el.GetInt64();
                var known = t switch { "tcp" => 6, "udp" => 17, "ipv4" => 2, "ipv6" => 10, _ => -1L };
                return known < 0 ? Tri.Unknown : (num == known ? Tri.True : Tri.False);
            }

            if (el.ValueKind != JsonValueKind.String)
            {
                return Tri.Unknown;
            }

            var s = el.GetString()!;
            return s.EndsWith('*') ? (t.StartsWith(s[..^1], StringComparison.Ordinal) ? Tri.True : Tri.False) : (s == t ? Tri.True : Tri.False);
        }

        return Tri.Unknown;
    }

    private static Tri InRange(Value left, JsonElement lo, JsonElement hi)
    {
        if (left.Number is { } n && lo.ValueKind == JsonValueKind.Number && hi.ValueKind == JsonValueKind.Number)
        {
            return n >= lo.GetInt64() && n <= hi.GetInt64() ? Tri.True : Tri.False;
        }

        if (left.Address is { } a && IPAddress.TryParse(lo.GetString(), out var l) && IPAddress.TryParse(hi.GetString(), out var h)
            && l.AddressFamily == a.AddressFamily && h.AddressFamily == a.AddressFamily)
        {
            return Compare(a, l) >= 0 && Compare(a, h) <= 0 ? Tri.True : Tri.False;
        }

        return Tri.Unknown;
    }

    private static int Compare(IPAddress x, IPAddress y)
    {
        var a = x.GetAddressBytes();
        var b = y.GetAddressBytes();
        for (var i = 0; i < a.Length; i++)
        {
            var c = a[i].CompareTo(b[i]);
            if (c != 0)
            {
                return c;
            }
        }

        return 0;
    }
}
