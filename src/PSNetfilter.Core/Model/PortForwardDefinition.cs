using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace PSNetfilter;

/// <summary>
/// The validated definition of a forward. Every constructor path validates, so the renderer can trust it:
/// names use only [A-Za-z0-9._-], addresses are parsed IPAddress values, ports are in range, and the
/// description is stored encoded (base64url) in the kernel. Nothing a user types reaches iptables-restore
/// input as free text.
/// </summary>
public sealed partial class PortForwardDefinition : IEquatable<PortForwardDefinition>
{
    public const int MaxNameLength = 64;

    /// <summary>The kernel limits a rule comment to 256 bytes; this keeps the tagged comment below it.</summary>
    public const int MaxDescriptionBytes = 128;

    private PortForwardDefinition(
        string name,
        Protocol protocol,
        IPAddress? externalAddress,
        int externalPort,
        IPAddress internalAddress,
        int internalPort,
        SnatMode snatMode,
        IPAddress? snatAddress,
        string? description)
    {
        Name = name;
        Protocol = protocol;
        ExternalAddress = externalAddress;
        ExternalPort = externalPort;
        InternalAddress = internalAddress;
        InternalPort = internalPort;
        SnatMode = snatMode;
        SnatAddress = snatAddress;
        Description = description;
        Family = internalAddress.AddressFamily == AddressFamily.InterNetworkV6 ? IpFamily.IPv6 : IpFamily.IPv4;
    }

    public string Name { get; }

    public Protocol Protocol { get; }

    public IpFamily Family { get; }

    public IPAddress? ExternalAddress { get; }

    public int ExternalPort { get; }

    public IPAddress InternalAddress { get; }

    public int InternalPort { get; }

    public SnatMode SnatMode { get; }

    public IPAddress? SnatAddress { get; }

    public string? Description { get; }

    /// <summary>
    /// Validates and builds a definition. <paramref name="snatAddress"/> must be given when
    /// <paramref name="snatMode"/> is <see cref="SnatMode.Snat"/> (resolve the route source first).
    /// </summary>
    /// <exception cref="PortForwardValidationException">Any field is invalid.</exception>
    public static PortForwardDefinition Create(
        string? name,
        Protocol protocol,
        IPAddress? externalAddress,
        int externalPort,
        IPAddress internalAddress,
        int? internalPort,
        SnatMode snatMode,
        IPAddress? snatAddress,
        string? description)
    {
        ArgumentNullException.ThrowIfNull(internalAddress);
        if (!Enum.IsDefined(protocol))
        {
            throw new PortForwardValidationException("InvalidProtocol", $"Protocol '{protocol}' is not supported. Use Tcp or Udp.", protocol);
        }

        if (!Enum.IsDefined(snatMode))
        {
            throw new PortForwardValidationException("InvalidSnatMode", $"SnatMode '{snatMode}' is not supported. Use Snat, Masquerade or None.", snatMode);
        }

        ValidatePort(externalPort, "ExternalPort");
        var iport = internalPort ?? externalPort;
        ValidatePort(iport, "InternalPort");

        CheckHostAddress(internalAddress, "InternalAddress", allowUnspecified: false);
        var family = internalAddress.AddressFamily;
        if (externalAddress is not null)
        {
            CheckHostAddress(externalAddress, "ExternalAddress", allowUnspecified: true);
            CheckFamily(externalAddress, family, "ExternalAddress", internalAddress);
            if (externalAddress.Equals(IPAddress.Any) || externalAddress.Equals(IPAddress.IPv6Any))
            {
                externalAddress = null; // 0.0.0.0 / :: mean "any local address"
            }
        }

        switch (snatMode)
        {
            case SnatMode.Snat:
                if (snatAddress is null)
                {
                    throw new PortForwardValidationException("SnatAddressRequired", "SNAT needs a source address: give -SnatAddress, or let it be resolved from the route to the internal address.", null);
                }

                CheckHostAddress(snatAddress, "SnatAddress", allowUnspecified: false);
                CheckFamily(snatAddress, family, "SnatAddress", internalAddress);
                break;
            default:
                if (snatAddress is not null)
                {
                    throw new PortForwardValidationException("SnatAddressConflict", $"-SnatAddress cannot be combined with SNAT mode {snatMode}.", snatAddress);
                }

                break;
        }

        if (description is not null)
        {
            ValidateDescription(description);
            if (description.Length == 0)
            {
                description = null;
            }
        }

        var protoName = protocol == Protocol.Tcp ? "tcp" : "udp";
        name ??= DefaultName(protoName, externalAddress, externalPort);
        ValidateName(name);

        return new PortForwardDefinition(name, protocol, externalAddress, externalPort, internalAddress, iport, snatMode, snatAddress, description);
    }

    /// <summary>
    /// Builds a definition read back from the kernel: as <see cref="Create"/>, except that a SNAT forward
    /// whose SNAT rule is missing (drift) may lack its address.
    /// </summary>
    internal static PortForwardDefinition CreateFromKernel(
        string name, Protocol protocol, IPAddress? externalAddress, int externalPort, IPAddress internalAddress, int internalPort, SnatMode snatMode, IPAddress? snatAddress, string? description)
    {
        if (snatMode == SnatMode.Snat && snatAddress is null)
        {
            var probe = Create(name, protocol, externalAddress, externalPort, internalAddress, internalPort, SnatMode.None, null, description);
            return new PortForwardDefinition(probe.Name, probe.Protocol, probe.ExternalAddress, probe.ExternalPort, probe.InternalAddress, probe.InternalPort, SnatMode.Snat, null, probe.Description);
        }

        return Create(name, protocol, externalAddress, externalPort, internalAddress, internalPort, snatMode, snatAddress, description);
    }

    /// <summary>Builds the default name from protocol and external endpoint, e.g. <c>tcp-1.2.3.4-8080</c>.</summary>
    public static string DefaultName(string protocol, IPAddress? externalAddress, int externalPort)
    {
        var addr = externalAddress is null ? "any" : externalAddress.ToString().Replace(':', '_');
        return $"{protocol}-{addr}-{externalPort}";
    }

    /// <exception cref="PortForwardValidationException">The name is empty, too long, or has a character outside [A-Za-z0-9._-].</exception>
    public static void ValidateName(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new PortForwardValidationException("InvalidName", "The name is empty. Use 1-64 characters from letters, digits, '.', '_' and '-'.", name);
        }

        if (name.Length > MaxNameLength)
        {
            throw new PortForwardValidationException("InvalidName", $"The name is {name.Length} characters long; at most {MaxNameLength} are allowed.", name);
        }

        if (!NameRegex().IsMatch(name))
        {
            throw new PortForwardValidationException("InvalidName", $"The name '{Printable(name)}' contains a character that is not allowed. Use only letters, digits, '.', '_' and '-'.", name);
        }
    }

    public static bool IsValidName(string? name) => name is { Length: > 0 and <= MaxNameLength } && NameRegex().IsMatch(name);

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

    public bool Equals(PortForwardDefinition? other) =>
        other is not null
        && Name == other.Name
        && Protocol == other.Protocol
        && Equals(ExternalAddress, other.ExternalAddress)
        && ExternalPort == other.ExternalPort
        && InternalAddress.Equals(other.InternalAddress)
        && InternalPort == other.InternalPort
        && SnatMode == other.SnatMode
        && Equals(SnatAddress, other.SnatAddress)
        && string.Equals(Description ?? string.Empty, other.Description ?? string.Empty, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as PortForwardDefinition);

    public override int GetHashCode() => HashCode.Combine(Name, Protocol, ExternalPort, InternalAddress, InternalPort, SnatMode);

    /// <summary>Human-readable list of what differs, for PortForwardExists errors.</summary>
    public IEnumerable<string> Differences(PortForwardDefinition other)
    {
        if (Protocol != other.Protocol) yield return $"Protocol {other.Protocol} -> {Protocol}";
        if (!Equals(ExternalAddress, other.ExternalAddress)) yield return $"ExternalAddress {other.ExternalAddress?.ToString() ?? "any"} -> {ExternalAddress?.ToString() ?? "any"}";
        if (ExternalPort != other.ExternalPort) yield return $"ExternalPort {other.ExternalPort} -> {ExternalPort}";
        if (!InternalAddress.Equals(other.InternalAddress)) yield return $"InternalAddress {other.InternalAddress} -> {InternalAddress}";
        if (InternalPort != other.InternalPort) yield return $"InternalPort {other.InternalPort} -> {InternalPort}";
        if (SnatMode != other.SnatMode) yield return $"SnatMode {other.SnatMode} -> {SnatMode}";
        if (!Equals(SnatAddress, other.SnatAddress)) yield return $"SnatAddress {other.SnatAddress} -> {SnatAddress}";
        if ((Description ?? string.Empty) != (other.Description ?? string.Empty)) yield return "Description";
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

        foreach (var c in description)
        {
            if (char.IsSurrogate(c) && !char.IsSurrogatePair(description, description.IndexOf(c)))
            {
                throw new PortForwardValidationException("InvalidDescription", "The description contains an unpaired surrogate and cannot be stored as UTF-8.", description);
            }
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

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex NameRegex();

    [GeneratedRegex(@"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")]
    private static partial Regex Ipv4Regex();
}
