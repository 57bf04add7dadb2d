using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace PSNetfilter.Core.Backends;

/// <summary>
/// How every backend marks what it owns: the tag <c>psnf:v1:NAME:ROLE</c> in a rule's or an element's comment,
/// the DNAT tag's SNAT mode code, flags (L local, I interface, D description, H hairpin, S<i>n</i> sources) and
/// base64url description, and the port and network texts the tags and rules share. One vocabulary, so that a
/// forward reads back the same from the iptables and the nftables backend.
/// </summary>
public static partial class ForwardTag
{
    /// <summary>Prefix of every rule comment the module writes: <c>psnf:v1:NAME:ROLE[...]</c>.</summary>
    public const string TagPrefix = "psnf:v1:";

    /// <summary>The comment tag of a role: <c>psnf:v1:NAME:snat</c>, <c>psnf:v1:NAME:fwd</c>.</summary>
    public static string Tag(string name, string role)
    {
        PortForwardDefinition.ValidateName(name);
        return TagPrefix + name + ":" + role;
    }

    /// <summary>Flag of the tags: the forward also has a nat/OUTPUT rule.</summary>
    public const string LocalFlag = "L";

    /// <summary>
    /// The flags every rule of a forward carries as the last part of its tag, when the forward has any of the
    /// parts that live only in its DNAT rules: L (a nat/OUTPUT rule), I (an in-interface), D (a description),
    /// H (a hairpin rule), S&lt;n&gt; (n allowed source networks, one DNAT rule each). They let the reader tell a forward whose DNAT
    /// rules are gone, or some of them, from one that never had those parts. Plain forwards carry none.
    /// </summary>
    public static string Flags(PortForwardDefinition d) =>
        (d.IncludeLocal ? LocalFlag : string.Empty)
        + (d.InInterface is null ? string.Empty : "I")
        + (d.Description is null ? string.Empty : "D")
        + (d.HairpinNetwork is null ? string.Empty : "H")
        + (d.SourceAddresses.Count == 0 ? string.Empty : "S" + d.SourceAddresses.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Reads <see cref="Flags"/>; null when the text is not a flag string.</summary>
    public static (bool Local, bool Interface, bool Description, int Sources)? ParseFlags(string flags) =>
        ParseAllFlags(flags) is { } f ? (f.Local, f.Interface, f.Description, f.Sources) : null;

    /// <summary>As <see cref="ParseFlags"/>, with H (a hairpin rule).</summary>
    public static (bool Local, bool Interface, bool Description, bool Hairpin, int Sources)? ParseAllFlags(string flags)
    {
        var m = FlagsRegex().Match(flags);
        if (!m.Success)
        {
            return null;
        }

        var sources = m.Groups[5].Success ? int.Parse(m.Groups[5].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
        return (m.Groups[1].Success, m.Groups[2].Success, m.Groups[3].Success, m.Groups[4].Success, sources);
    }

    [GeneratedRegex(@"^(L)?(I)?(D)?(H)?(?:S([1-9][0-9]{0,3}))?\z")]
    private static partial Regex FlagsRegex();

    public static string ModeCode(SnatMode m) => m switch
    {
        SnatMode.Snat => "snat",
        SnatMode.Masquerade => "masq",
        _ => "none",
    };

    public static SnatMode? ParseModeCode(string code) => code switch
    {
        "snat" => SnatMode.Snat,
        "masq" => SnatMode.Masquerade,
        "none" => SnatMode.None,
        _ => null,
    };

    /// <summary>Base64url without padding: the description is free text, the comment stays in a closed alphabet.</summary>
    public static string EncodeDescription(string? description) =>
        string.IsNullOrEmpty(description)
            ? string.Empty
            : Convert.ToBase64String(Encoding.UTF8.GetBytes(description)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string? DecodeDescription(string encoded)
    {
        if (encoded.Length == 0)
        {
            return null;
        }

        var s = encoded.Replace('-', '+').Replace('_', '/');
        s = s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '=');
        try
        {
            return new UTF8Encoding(false, true).GetString(Convert.FromBase64String(s));
        }
        catch (FormatException)
        {
            return null;
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>"8080" or "8000:8010" (iptables port-range syntax with <paramref name="separator"/>).</summary>
    public static string PortSpec(int first, int last, char separator) =>
        first == last
            ? first.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{first}{separator}{last}");

    /// <summary>"192.0.2.7/32", "192.0.2.0/24".</summary>
    public static string NetworkSpec(IPNetwork n) => n.BaseAddress + "/" + n.PrefixLength.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
