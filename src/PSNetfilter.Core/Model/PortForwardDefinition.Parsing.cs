using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace PSNetfilter;

/// <summary>Parsing and checking of the single fields of a definition: addresses, networks, ports, descriptions.</summary>
public sealed partial class PortForwardDefinition : IEquatable<PortForwardDefinition>
{
    /// <summary>
    /// Parses an address strictly: dotted-quad IPv4 or IPv6 text, no prefix length, no zone, no
    /// shorthand such as "10.1" that IPAddress.Parse would accept.
    /// </summary>
    /// <exception cref="PortForwardValidationException">With id InvalidAddress.</exception>
    public static IPAddress ParseAddress(string? text, string parameterName)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} is empty. Give an IPv4 or IPv6 address such as 192.0.2.10 or 2001:db8::10.", text);
        }

        var t = text.Trim();
        var ok = t.Contains(':')
            ? !t.Contains('%') && !t.Contains('/') && IPAddress.TryParse(t, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6
            : Ipv4Regex().IsMatch(t) && IPAddress.TryParse(t, out _);
        if (!ok || !IPAddress.TryParse(t, out var address))
        {
            var hint = t.Contains('/') ? " A prefix length (/nn) is not allowed: give a single address." : string.Empty;
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} '{Printable(t)}' is not an IPv4 or IPv6 address.{hint}", text);
        }

        if (address.IsIPv4MappedToIPv6)
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} '{t}' is an IPv4-mapped IPv6 address; give the IPv4 address {address.MapToIPv4()} instead.", text);
        }

        return address;
    }

    private static void ValidatePort(int port, string parameterName)
    {
        if (port is < 1 or > 65535)
        {
            throw new PortForwardValidationException("InvalidPort", $"{parameterName} {port} is out of range. Use a port from 1 to 65535.", port);
        }
    }

    private static void ValidateDescription(string description)
    {
        var bytes = Encoding.UTF8.GetByteCount(description);
        if (bytes > MaxDescriptionBytes)
        {
            throw new PortForwardValidationException("DescriptionTooLong", $"The description is {bytes} bytes in UTF-8; at most {MaxDescriptionBytes} fit in the kernel's rule comment.", description);
        }

        try
        {
            _ = new UTF8Encoding(false, true).GetByteCount(description);
        }
        catch (EncoderFallbackException)
        {
            throw new PortForwardValidationException("InvalidDescription", "The description contains an unpaired surrogate and cannot be stored as UTF-8.", description);
        }
    }

    private static void CheckHostAddress(IPAddress address, string parameterName, bool allowUnspecified)
    {
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} '{address}' is not an IPv4 or IPv6 address.", address);
        }

        if (address.IsIPv4MappedToIPv6)
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} '{address}' is an IPv4-mapped IPv6 address; give the IPv4 address {address.MapToIPv4()} instead.", address);
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} '{address}' has a zone index; iptables cannot match on it.", address);
        }

        var unspecified = address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
        if (unspecified && !allowUnspecified)
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} cannot be the unspecified address {address}.", address);
        }

        var bytes = address.GetAddressBytes();
        var multicast = address.AddressFamily == AddressFamily.InterNetwork ? bytes[0] >= 224 : bytes[0] == 0xff;
        if (multicast)
        {
            throw new PortForwardValidationException("InvalidAddress", $"{parameterName} '{address}' is a multicast or broadcast address; a forward needs a unicast address.", address);
        }
    }

    private static void CheckFamily(IPAddress address, AddressFamily family, string parameterName, IPAddress internalAddress)
    {
        if (address.AddressFamily != family)
        {
            throw new PortForwardValidationException(
                "AddressFamilyMismatch",
                $"{parameterName} '{address}' is {Describe(address.AddressFamily)} but InternalAddress '{internalAddress}' is {Describe(family)}. A forward stays within one family; create one forward per family.",
                address);
        }
    }

    private static string Describe(AddressFamily f) => f == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";

    internal static string Printable(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString());
        }

        return sb.ToString();
    }

    [GeneratedRegex(@"^[A-Za-z0-9._-]+\z")]
    private static partial Regex NameRegex();

    /// <summary>Parses a source address or network ("192.0.2.7", "192.0.2.0/24", "2001:db8::/32").</summary>
    /// <exception cref="PortForwardValidationException">InvalidSourceAddress.</exception>
    public static IPNetwork ParseNetwork(string? text)
    {
        var t = text?.Trim() ?? string.Empty;
        var slash = t.IndexOf('/');
        var addrText = slash < 0 ? t : t[..slash];
        IPAddress address;
        try
        {
            address = ParseAddress(addrText, "SourceAddress");
        }
        catch (PortForwardValidationException ex)
        {
            throw new PortForwardValidationException("InvalidSourceAddress", ex.Message, text);
        }

        var max = address.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(t[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out prefix) || prefix < 0 || prefix > max))
        {
            throw new PortForwardValidationException("InvalidSourceAddress", $"SourceAddress '{Printable(t)}' has a bad prefix length: use /0 to /{max}.", text);
        }

        IPNetwork network;
        try
        {
            network = new IPNetwork(address, prefix);
        }
        catch (ArgumentException)
        {
            network = default;
        }

        if (!network.BaseAddress?.Equals(address) ?? true)
        {
            throw new PortForwardValidationException("InvalidSourceAddress", $"SourceAddress '{Printable(t)}' has host bits set beyond /{prefix}: give the network address.", text);
        }

        return network;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}\+?\z")]
    private static partial Regex InterfaceRegex();

    [GeneratedRegex(@"^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}\z")]
    private static partial Regex Ipv4Regex();
}
