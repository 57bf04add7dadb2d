using System.Net;
using System.Net.Sockets;

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
    public const int MaxDescriptionBytes = 120;

    /// <summary>Most source networks a forward's allow-list may hold (one DNAT rule each).</summary>
    public const int MaxSources = 64;

    private PortForwardDefinition(
        string name,
        Protocol protocol,
        IPAddress? externalAddress,
        int externalPort,
        IPAddress internalAddress,
        int internalPort,
        SnatMode snatMode,
        IPAddress? snatAddress,
        string? description,
        int externalPortEnd,
        int internalPortEnd,
        IReadOnlyList<IPNetwork> sourceAddresses,
        string? inInterface,
        bool includeLocal)
    {
        ExternalPortEnd = externalPortEnd;
        InternalPortEnd = internalPortEnd;
        SourceAddresses = sourceAddresses;
        InInterface = inInterface;
        IncludeLocal = includeLocal;
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

    /// <summary>Last external port; equals <see cref="ExternalPort"/> for a single port.</summary>
    public int ExternalPortEnd { get; }

    /// <summary>Last internal port; equals <see cref="InternalPort"/> for a single port or when a range maps to one port.</summary>
    public int InternalPortEnd { get; }

    /// <summary>Sources allowed to use the forward; empty means any.</summary>
    public IReadOnlyList<IPNetwork> SourceAddresses { get; }

    /// <summary>The interface traffic must arrive on; null means any.</summary>
    public string? InInterface { get; }

    /// <summary>Also reachable from the gateway itself (nat/OUTPUT).</summary>
    public bool IncludeLocal { get; }

    /// <summary>
    /// For a -NoSnat forward with -IncludeLocal: the gateway's network towards the internal host. Connections
    /// from there (hairpin: internal clients using the external address) are masqueraded, since the internal
    /// host would otherwise answer them directly. Resolved from the routes; null otherwise.
    /// </summary>
    public IPNetwork? HairpinNetwork { get; private init; }

    public bool IsRange => ExternalPortEnd != ExternalPort;

    public bool IsLoopback => IPAddress.IsLoopback(InternalAddress);

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
        string? description,
        ForwardExtras? extras = null)
    {
        ArgumentNullException.ThrowIfNull(internalAddress);
        extras ??= ForwardExtras.None;
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
        var extEnd = extras.ExternalPortEnd ?? externalPort;
        ValidatePort(extEnd, "ExternalPort");
        if (extEnd < externalPort)
        {
            throw new PortForwardValidationException("InvalidPort", $"The external port range {externalPort}-{extEnd} ends before it starts.", extEnd);
        }

        var count = extEnd - externalPort;
        var intEnd = extras.InternalPortEnd ?? (internalPort is null ? iport + count : iport);
        ValidatePort(intEnd, "InternalPort");
        if (intEnd != iport && intEnd - iport != count)
        {
            throw new PortForwardValidationException(
                "PortRangeMismatch",
                $"The internal port range {iport}-{intEnd} has {intEnd - iport + 1} ports but the external range {externalPort}-{extEnd} has {count + 1}. Give a range of the same size, or one internal port.",
                intEnd);
        }

        var inInterface = extras.InInterface;
        if (!string.IsNullOrEmpty(inInterface))
        {
            if (!InterfaceRegex().IsMatch(inInterface))
            {
                throw new PortForwardValidationException("InvalidInterface", $"'{Printable(inInterface)}' is not an interface name: use 1-15 characters from letters, digits, '.', '_' and '-', optionally ending in '+' (a prefix match).", inInterface);
            }
        }
        else
        {
            inInterface = null;
        }

        var sources = new List<IPNetwork>();
        foreach (var src in extras.SourceAddresses ?? Array.Empty<IPNetwork>())
        {
            if (src.BaseAddress.IsIPv4MappedToIPv6)
            {
                throw new PortForwardValidationException("InvalidSourceAddress", $"SourceAddress '{src}' is an IPv4-mapped IPv6 network; give the IPv4 network instead.", src.ToString());
            }

            if (src.BaseAddress.AddressFamily != internalAddress.AddressFamily)
            {
                throw new PortForwardValidationException("AddressFamilyMismatch", $"SourceAddress '{src}' is not of the same family as InternalAddress '{internalAddress}'.", src.ToString());
            }

            if (!sources.Contains(src))
            {
                sources.Add(src);
            }
        }

        if (sources.Count > MaxSources)
        {
            throw new PortForwardValidationException("TooManySources", $"{sources.Count} source networks were given; at most {MaxSources} fit (one DNAT rule each). Use wider networks.", sources.Count);
        }

        sources.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));

        CheckHostAddress(internalAddress, "InternalAddress", allowUnspecified: false);
        var family = internalAddress.AddressFamily;
        if (IPAddress.IsLoopback(internalAddress))
        {
            if (family == AddressFamily.InterNetworkV6)
            {
                throw new PortForwardValidationException("LoopbackNotSupported", "The kernel cannot DNAT to the IPv6 loopback address ::1. Forward to another local address.", internalAddress);
            }

            if (string.IsNullOrEmpty(extras.InInterface) || extras.InInterface.EndsWith('+'))
            {
                throw new PortForwardValidationException("LoopbackNeedsInInterface", $"A forward to the loopback address {internalAddress} needs -InInterface with one exact interface name (no '+' prefix): route_localnet is switched on for that interface only.", internalAddress);
            }

            if (snatMode != SnatMode.None)
            {
                throw new PortForwardValidationException("LoopbackNeedsNoSnat", $"A forward to the loopback address {internalAddress} is delivered locally and cannot be source-NATed: use -NoSnat.", internalAddress);
            }
        }
        if (externalAddress is not null)
        {
            CheckHostAddress(externalAddress, "ExternalAddress", allowUnspecified: true);
            CheckFamily(externalAddress, family, "ExternalAddress", internalAddress);
            if (externalAddress.Equals(IPAddress.Any) || externalAddress.Equals(IPAddress.IPv6Any))
            {
                externalAddress = null; // 0.0.0.0 / :: mean "any local address"
            }
            else if (externalAddress.Equals(internalAddress) && iport == externalPort && intEnd == extEnd)
            {
                var ports = extEnd == externalPort ? $"port {externalPort}" : $"ports {externalPort}-{extEnd}";
                throw new PortForwardValidationException(
                    "ForwardToItself",
                    $"The forward would send {externalAddress} {ports} to the same address and {ports}: the DNAT changes nothing. Give the address (and port) of the host the connections should reach.",
                    internalAddress);
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
        name ??= DefaultName(protoName, externalAddress, externalPort, family == AddressFamily.InterNetworkV6);
        ValidateName(name);

        if (extras.HairpinNetwork is { } hairpin)
        {
            if (snatMode != SnatMode.None || !extras.IncludeLocal)
            {
                throw new PortForwardValidationException("HairpinNetworkConflict", "A hairpin network applies only to a -NoSnat forward with -IncludeLocal.", hairpin.ToString());
            }

            if (hairpin.BaseAddress.AddressFamily != internalAddress.AddressFamily)
            {
                throw new PortForwardValidationException("AddressFamilyMismatch", $"The hairpin network '{hairpin}' is not of the same family as InternalAddress '{internalAddress}'.", hairpin.ToString());
            }
        }

        return new PortForwardDefinition(name, protocol, externalAddress, externalPort, internalAddress, iport, snatMode, snatAddress, description, extEnd, intEnd, sources, inInterface, extras.IncludeLocal)
        {
            HairpinNetwork = extras.HairpinNetwork,
        };
    }

    /// <summary>
    /// Builds a definition read back from the kernel: as <see cref="Create"/>, except that a SNAT forward
    /// whose SNAT rule is missing (drift) may lack its address.
    /// </summary>
    internal static PortForwardDefinition CreateFromKernel(
        string name, Protocol protocol, IPAddress? externalAddress, int externalPort, IPAddress internalAddress, int internalPort, SnatMode snatMode, IPAddress? snatAddress, string? description, ForwardExtras? extras = null)
    {
        if (snatMode == SnatMode.Snat && snatAddress is null)
        {
            var probe = Create(name, protocol, externalAddress, externalPort, internalAddress, internalPort, SnatMode.None, null, description, extras);
            return new PortForwardDefinition(probe.Name, probe.Protocol, probe.ExternalAddress, probe.ExternalPort, probe.InternalAddress, probe.InternalPort, SnatMode.Snat, null, probe.Description, probe.ExternalPortEnd, probe.InternalPortEnd, probe.SourceAddresses, probe.InInterface, probe.IncludeLocal);
        }

        return Create(name, protocol, externalAddress, externalPort, internalAddress, internalPort, snatMode, snatAddress, description, extras);
    }

    /// <summary>
    /// Builds the default name from protocol and external endpoint: <c>tcp-1.2.3.4-8080</c>,
    /// <c>tcp-any-8080</c>, <c>tcp-2001_db8__1-8080</c>, and <c>tcp-any6-8080</c> for IPv6 on any address.
    /// </summary>
    public static string DefaultName(string protocol, IPAddress? externalAddress, int externalPort, bool ipv6 = false)
    {
        var addr = externalAddress is null ? (ipv6 ? "any6" : "any") : externalAddress.ToString().Replace(':', '_');
        return $"{protocol}-{addr}-{externalPort}";
    }

    /// <exception cref="PortForwardValidationException">The name is empty, too long, has a character outside [A-Za-z0-9._-], is '.' or '..', or starts with '-'.</exception>
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

        if (!IsNewName(name))
        {
            // '.' and '..' read as directories, and a leading '-' as an option, wherever a name is passed on.
            throw new PortForwardValidationException("InvalidName", $"The name '{name}' is not allowed: a name is not '.' or '..' and does not start with '-'.", name);
        }
    }

    /// <summary>A valid name that a new forward may take: not '.' or '..', not starting with '-'.</summary>
    public static bool IsNewName(string? name) => IsValidName(name) && name is not ("." or "..") && name![0] != '-';

    /// <summary>The name's alphabet and length only: how a name in the kernel or a boot set is recognised (one made before '.', '..' and a leading '-' were refused still reads).</summary>
    public static bool IsValidName(string? name) => name is { Length: > 0 and <= MaxNameLength } && NameRegex().IsMatch(name);

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
        && string.Equals(Description ?? string.Empty, other.Description ?? string.Empty, StringComparison.Ordinal)
        && ExternalPortEnd == other.ExternalPortEnd
        && InternalPortEnd == other.InternalPortEnd
        && SourceAddresses.SequenceEqual(other.SourceAddresses)
        && InInterface == other.InInterface
        && IncludeLocal == other.IncludeLocal
        && Equals(HairpinNetwork, other.HairpinNetwork);

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
        if (ExternalPortEnd != other.ExternalPortEnd) yield return $"ExternalPortEnd {other.ExternalPortEnd} -> {ExternalPortEnd}";
        if (InternalPortEnd != other.InternalPortEnd) yield return $"InternalPortEnd {other.InternalPortEnd} -> {InternalPortEnd}";
        if (!SourceAddresses.SequenceEqual(other.SourceAddresses)) yield return $"SourceAddress {string.Join(",", other.SourceAddresses)} -> {string.Join(",", SourceAddresses)}";
        if (InInterface != other.InInterface) yield return $"InInterface {other.InInterface ?? "any"} -> {InInterface ?? "any"}";
        if (IncludeLocal != other.IncludeLocal) yield return $"IncludeLocal {other.IncludeLocal} -> {IncludeLocal}";
        if (!Equals(HairpinNetwork, other.HairpinNetwork)) yield return $"HairpinNetwork {other.HairpinNetwork?.ToString() ?? "none"} -> {HairpinNetwork?.ToString() ?? "none"}";
    }

}
