using System.Net;

namespace PSNetfilter;

/// <summary>
/// A port forward: what New-PortForward creates and Get-PortForward rebuilds from the live ruleset.
/// A definition is built through <see cref="PortForwardDefinition"/>, which validates every field,
/// so an instance with a name or address that could inject into iptables-restore input cannot exist.
/// </summary>
public sealed class PortForward
{
    internal PortForward(PortForwardDefinition definition)
    {
        Definition = definition;
    }

    /// <summary>The validated, kernel-independent part (internal: PowerShell users see the flat properties).</summary>
    internal PortForwardDefinition Definition { get; }

    public string Name => Definition.Name;

    public Protocol Protocol => Definition.Protocol;

    public IpFamily Family => Definition.Family;

    /// <summary>Null means any local address of the gateway (addrtype LOCAL).</summary>
    public IPAddress? ExternalAddress => ForwardAddress.From(Definition.ExternalAddress);

    public int ExternalPort => Definition.ExternalPort;

    public IPAddress InternalAddress => ForwardAddress.From(Definition.InternalAddress)!;

    public int InternalPort => Definition.InternalPort;

    public SnatMode SnatMode => Definition.SnatMode;

    /// <summary>The SNAT source address; null for Masquerade and None.</summary>
    public IPAddress? SnatAddress => ForwardAddress.From(Definition.SnatAddress);

    public string? Description => Definition.Description;

    /// <summary>Last external port of a range; equals ExternalPort for a single port.</summary>
    public int ExternalPortEnd => Definition.ExternalPortEnd;

    /// <summary>Last internal port of a range; equals InternalPort for a single port.</summary>
    public int InternalPortEnd => Definition.InternalPortEnd;

    /// <summary>Sources allowed to use the forward (addresses or networks); empty means any.</summary>
    public AddressList SourceAddress => new(Definition.SourceAddresses.Select(n => n.ToString()).ToList());

    /// <summary>Interface the traffic must arrive on; null means any.</summary>
    public string? InInterface => Definition.InInterface;

    /// <summary>Also reachable from the gateway itself through nat/OUTPUT.</summary>
    public bool IncludeLocal => Definition.IncludeLocal;

    /// <summary>The named network namespace the forward lives in; null for the host's own.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>The backend whose rules hold the forward ("iptables"); null for a forward the kernel does not hold (recorded, but gone).</summary>
    public string? Backend { get; init; }

    /// <summary>Roles whose rule is absent from the kernel (drift). Empty when complete.</summary>
    public IReadOnlyList<ForwardPart> MissingRules { get; init; } = Array.Empty<ForwardPart>();

    /// <summary>Roles that have more than one rule in the kernel (drift).</summary>
    public IReadOnlyList<ForwardPart> DuplicateRules { get; init; } = Array.Empty<ForwardPart>();

    /// <summary>Roles whose rule sits in a module chain that no jump leads to any more (a jump deleted by hand).</summary>
    public IReadOnlyList<ForwardPart> UnreachableRules { get; init; } = Array.Empty<ForwardPart>();

    /// <summary>True when every rule is there once and reached.</summary>
    public bool IsComplete => MissingRules.Count == 0 && DuplicateRules.Count == 0 && UnreachableRules.Count == 0;

    /// <summary>
    /// True when the rules that held the source allow-list, interface or description are gone, so this object
    /// cannot say the whole definition: re-create it from the full definition, not from this object.
    /// </summary>
    internal bool DefinitionPartial { get; init; }

    /// <summary>"Complete", or which rules are missing / duplicated / unreachable.</summary>
    public string Status
    {
        get
        {
            if (IsComplete)
            {
                return "Complete";
            }

            var parts = new List<string>();
            if (MissingRules.Count > 0)
            {
                parts.Add("missing " + string.Join(", ", MissingRules));
            }

            if (DuplicateRules.Count > 0)
            {
                parts.Add("duplicated " + string.Join(", ", DuplicateRules));
            }

            if (UnreachableRules.Count > 0)
            {
                parts.Add("unreachable " + string.Join(", ", UnreachableRules) + " (a jump to its chain is gone)");
            }

            if (DefinitionPartial)
            {
                parts.Add("its allow-list, interface or description went with the missing rules");
            }

            return "Incomplete: " + string.Join("; ", parts);
        }
    }

    /// <summary>Packets accepted in FORWARD for this forward's connections, both directions (kernel counters).</summary>
    public ulong Packets { get; init; }

    /// <summary>Bytes accepted in FORWARD for this forward's connections, both directions (kernel counters).</summary>
    public ulong Bytes { get; init; }

    /// <summary>True when this forward is in the saved boot set of the persistence unit.</summary>
    public bool Persisted { get; init; }

    /// <summary>"1.2.3.4:8080", "*:8080", "[2001:db8::1]:8080".</summary>
    public string ExternalEndpoint => Endpoint(ExternalAddress, ExternalPort, ExternalPortEnd);

    public string InternalEndpoint => Endpoint(InternalAddress, InternalPort, InternalPortEnd);

    /// <summary>"snat 192.168.2.5", "masquerade" or "none".</summary>
    public string SourceNat => SnatMode switch
    {
        SnatMode.Snat => "snat " + SnatAddress,
        SnatMode.Masquerade => "masquerade",
        _ => "none",
    };

    public override string ToString() =>
        $"{Name} {Protocol} {ExternalEndpoint} -> {InternalEndpoint} {SourceNat}";

    internal static string Endpoint(IPAddress? address, int port, int? portEnd = null)
    {
        var ports = portEnd is null || portEnd == port ? port.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{port}-{portEnd}";
        if (address is null)
        {
            return "*:" + ports;
        }

        return address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"[{address}]:{ports}"
            : $"{address}:{ports}";
    }
}
