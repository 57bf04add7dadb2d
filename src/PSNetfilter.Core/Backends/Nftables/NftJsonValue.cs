using System.Globalization;
using System.Net;
using System.Text.Json;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// The values of <c>nft -j</c> (schema 1) that the table reader needs: scalars, ranges, prefixes and concatenations,
/// as nft input text; and the parts of a set element (key, data, comment, counter).
/// </summary>
public static class NftJsonValue
{
    /// <summary>The value as nft reads it: 8080, 8000-8010, 192.0.2.0/24, a . b . c.</summary>
    public static string Text(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString()!,
        JsonValueKind.Number => v.GetRawText(),
        JsonValueKind.Object when v.TryGetProperty("range", out var r) && r.GetArrayLength() == 2 => Text(r[0]) + "-" + Text(r[1]),
        JsonValueKind.Object when v.TryGetProperty("prefix", out var p) => Text(p.GetProperty("addr")) + "/" + Text(p.GetProperty("len")),
        JsonValueKind.Object when v.TryGetProperty("concat", out var c) => string.Join(" . ", c.EnumerateArray().Select(Text)),
        _ => throw new FormatException("unexpected value " + v.GetRawText()),
    };

    /// <summary>The fields of a concatenation (one field for a plain value).</summary>
    public static IReadOnlyList<JsonElement> Fields(JsonElement v) =>
        v.ValueKind == JsonValueKind.Object && v.TryGetProperty("concat", out var c) ? c.EnumerateArray().ToList() : new[] { v };

    /// <summary>First and last port of a number or a range.</summary>
    public static (int First, int Last) Ports(JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number)
        {
            var p = v.GetInt32();
            return (p, p);
        }

        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("range", out var r) && r.GetArrayLength() == 2)
        {
            return (r[0].GetInt32(), r[1].GetInt32());
        }

        if (v.ValueKind == JsonValueKind.String && int.TryParse(v.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var s))
        {
            return (s, s);
        }

        throw new FormatException("not a port or a port range: " + v.GetRawText());
    }

    /// <summary>An address or network: "192.0.2.0/24" from a prefix, "192.0.2.7/32" from a bare address.</summary>
    public static IPNetwork Network(JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("prefix", out var p))
        {
            return new IPNetwork(System.Net.IPAddress.Parse(p.GetProperty("addr").GetString()!), p.GetProperty("len").GetInt32());
        }

        var a = System.Net.IPAddress.Parse(v.GetString()!);
        return new IPNetwork(a, a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 128 : 32);
    }

    /// <summary>
    /// One element of a set (<c>{"elem": {...}}</c> or a bare value) or of a map (<c>[key, data]</c>): its key,
    /// data (maps only), comment and counter.
    /// </summary>
    public static (JsonElement Key, JsonElement? Data, string? Comment, long Packets, long Bytes) Element(JsonElement e)
    {
        JsonElement? data = null;
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2)
        {
            data = e[1];
            e = e[0];
        }

        if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("elem", out var inner) && inner.ValueKind == JsonValueKind.Object)
        {
            var comment = inner.TryGetProperty("comment", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            long packets = 0, bytes = 0;
            if (inner.TryGetProperty("counter", out var counter) && counter.ValueKind == JsonValueKind.Object)
            {
                packets = counter.TryGetProperty("packets", out var pk) ? pk.GetInt64() : 0;
                bytes = counter.TryGetProperty("bytes", out var by) ? by.GetInt64() : 0;
            }

            return (inner.GetProperty("val"), data, comment, packets, bytes);
        }

        return (e, data, null, 0, 0);
    }
}
