using System.Globalization;
using System.Text;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// A forward's description in the set <c>notes</c> (type ifname): nft allows 128 characters in a comment and the
/// base64url description takes up to 160, so it is cut into chunks. Chunk i of n is the element
/// <c>"HASH.i"</c> (HASH: 8 hex digits of the name's FNV-1a hash; the key only has to be unique, the name is in the
/// comment) with comment <c>psnf:v1:NAME:di/n:CHUNK</c>. The comment's alphabet is base64url: nothing to escape.
/// </summary>
public static class NftNotes
{
    /// <summary>The note elements of a description: key (quoted) and comment, in order. Empty for none.</summary>
    public static IReadOnlyList<(string Key, string Comment)> Render(string name, string? description)
    {
        var encoded = ForwardTag.EncodeDescription(description);
        if (encoded.Length == 0)
        {
            return Array.Empty<(string, string)>();
        }

        // Room for "psnf:v1:NAME:d9/9:" with one-digit indexes (a 160-character text needs at most 4 chunks).
        var room = NftTableLayout.MaxCommentLength - (ForwardTag.TagPrefix.Length + name.Length + 6);
        var count = (encoded.Length + room - 1) / room;
        var list = new List<(string, string)>(count);
        for (var i = 0; i < count; i++)
        {
            var chunk = encoded.Substring(i * room, Math.Min(room, encoded.Length - (i * room)));
            var key = "\"" + Hash(name) + "." + i.ToString(CultureInfo.InvariantCulture) + "\"";
            list.Add((key, $"{ForwardTag.TagPrefix}{name}:d{i}/{count}:{chunk}"));
        }

        return list;
    }

    /// <summary>Reads one note comment after the name: "d0/2:CHUNK" -> (0, 2, CHUNK); null when it is not one.</summary>
    public static (int Index, int Count, string Chunk)? ParseRole(string rest)
    {
        if (rest.Length < 5 || rest[0] != 'd')
        {
            return null;
        }

        var colon = rest.IndexOf(':');
        var slash = rest.IndexOf('/');
        if (colon < 0 || slash < 0 || slash > colon
            || !int.TryParse(rest.AsSpan(1, slash - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            || !int.TryParse(rest.AsSpan(slash + 1, colon - slash - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var count)
            || count < 1 || index >= count)
        {
            return null;
        }

        return (index, count, rest[(colon + 1)..]);
    }

    /// <summary>8 lowercase hex digits of the 32-bit FNV-1a hash of the name's UTF-8 bytes.</summary>
    public static string Hash(string name)
    {
        var h = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(name))
        {
            h = unchecked((h ^ b) * 16777619u);
        }

        return h.ToString("x8", CultureInfo.InvariantCulture);
    }
}
