using System.Net;

namespace PSNetfilter;

/// <summary>
/// What New-PortForward was asked for, before the SNAT address is resolved. <see cref="Validate"/> checks
/// everything that can be checked without the kernel, so bad input fails before any process runs.
/// </summary>
public sealed record PortForwardRequest(
    string? Name,
    Protocol Protocol,
    IPAddress? ExternalAddress,
    int ExternalPort,
    IPAddress InternalAddress,
    int? InternalPort,
    SnatMode SnatMode,
    IPAddress? SnatAddress,
    string? Description,
    ForwardExtras? Extras = null)
{
    /// <summary>True when the SNAT address comes from the route to the internal address.</summary>
    public bool NeedsRouteSource => SnatMode == SnatMode.Snat && SnatAddress is null && !IPAddress.IsLoopback(InternalAddress);

    /// <summary>True when a -NoSnat -IncludeLocal forward needs the gateway's network towards the internal host (hairpin).</summary>
    public bool NeedsHairpinNetwork => EffectiveMode == SnatMode.None && (Extras?.IncludeLocal ?? false) && Extras?.HairpinNetwork is null && !IPAddress.IsLoopback(InternalAddress);

    /// <summary>A forward to a loopback address is delivered locally: the default source NAT mode becomes None.</summary>
    private SnatMode EffectiveMode => IsLoopbackDefault ? SnatMode.None : SnatMode;

    private bool IsLoopbackDefault => SnatMode == SnatMode.Snat && SnatAddress is null && IPAddress.IsLoopback(InternalAddress);

    /// <summary>Validates every field; returns the definition (with a stand-in SNAT address when it still has to be resolved).</summary>
    /// <exception cref="PortForwardValidationException">Any field is invalid.</exception>
    public PortForwardDefinition Validate() =>
        Build(IsLoopbackDefault ? null : NeedsRouteSource ? (InternalAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback) : SnatAddress);

    /// <summary>The definition with the resolved SNAT address.</summary>
    public PortForwardDefinition Build(IPAddress? snatAddress, IPNetwork? hairpinNetwork = null) =>
        PortForwardDefinition.Create(Name, Protocol, ExternalAddress, ExternalPort, InternalAddress, InternalPort, EffectiveMode, snatAddress, Description,
            hairpinNetwork is null ? Extras : (Extras ?? ForwardExtras.None) with { HairpinNetwork = hairpinNetwork });
}
