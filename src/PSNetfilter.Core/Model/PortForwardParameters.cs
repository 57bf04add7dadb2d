using System.Net;

namespace PSNetfilter;

/// <summary>
/// New-PortForward's parameters as they were bound (text as given, switches as flags), turned into a
/// <see cref="PortForwardRequest"/> by <see cref="ToRequest"/>: the source NAT switches, port ranges given as
/// a range or as a start and an end, and blank CSV cells.
/// </summary>
public sealed record PortForwardParameters
{
    public string? Name { get; init; }

    public Protocol Protocol { get; init; }

    public string? ExternalAddress { get; init; }

    /// <summary>-ExternalAddress was given on the command line (an empty one is then an error, not "any").</summary>
    public bool ExternalAddressGiven { get; init; }

    public PortRange ExternalPort { get; init; }

    public int? ExternalPortEnd { get; init; }

    public string InternalAddress { get; init; } = string.Empty;

    public PortRange? InternalPort { get; init; }

    /// <summary>-InternalPort was given on the command line (an empty one is then an error).</summary>
    public bool InternalPortGiven { get; init; }

    public int? InternalPortEnd { get; init; }

    public IReadOnlyList<string?>? SourceAddress { get; init; }

    public string? InInterface { get; init; }

    public bool IncludeLocal { get; init; }

    public string? SnatAddress { get; init; }

    public bool Masquerade { get; init; }

    public bool NoSnat { get; init; }

    public SnatMode? SnatMode { get; init; }

    public string? Description { get; init; }

    /// <exception cref="PortForwardValidationException">ConflictingSnatOptions, InvalidPort, PortRangeMismatch, InvalidAddress, ...</exception>
    public PortForwardRequest ToRequest()
    {
        var mode = SnatMode ?? PSNetfilter.SnatMode.Snat;
        if (Masquerade && NoSnat)
        {
            throw new PortForwardValidationException("ConflictingSnatOptions", "-Masquerade and -NoSnat exclude each other: choose one source NAT mode.", null);
        }

        if (Masquerade)
        {
            mode = PSNetfilter.SnatMode.Masquerade;
        }
        else if (NoSnat)
        {
            mode = PSNetfilter.SnatMode.None;
        }

        // An empty SnatAddress (a blank CSV cell) means "not given": the route decides.
        IPAddress? snat = null;
        if (!string.IsNullOrEmpty(SnatAddress))
        {
            if (mode != PSNetfilter.SnatMode.Snat)
            {
                throw new PortForwardValidationException("ConflictingSnatOptions", $"-SnatAddress sets an SNAT address; it cannot be combined with source NAT mode {mode}.", SnatAddress);
            }

            snat = PortForwardDefinition.ParseAddress(SnatAddress, "SnatAddress");
        }

        // A blank cell of a piped CSV row means "not given"; an explicit empty argument is an error.
        var externalText = string.IsNullOrWhiteSpace(ExternalAddress) && !ExternalAddressGiven ? null : ExternalAddress;
        if (InternalPort is null && InternalPortGiven)
        {
            throw new PortForwardValidationException("InvalidPort", "InternalPort is empty. Give a port or a range, or omit it to use the external port.", null);
        }

        var external = externalText is null ? null : PortForwardDefinition.ParseAddress(externalText, "ExternalAddress");
        var internalAddress = PortForwardDefinition.ParseAddress(InternalAddress, "InternalAddress");
        var extEnd = ExternalPort.IsSingle ? ExternalPortEnd ?? ExternalPort.Last : ExternalPort.Last;
        if (!ExternalPort.IsSingle && ExternalPortEnd is not null && ExternalPortEnd != ExternalPort.Last)
        {
            throw new PortForwardValidationException("PortRangeMismatch", $"-ExternalPort {ExternalPort} and -ExternalPortEnd {ExternalPortEnd} disagree: give the range once.", ExternalPortEnd);
        }

        int? intEnd = InternalPort is { IsSingle: false } ir ? ir.Last : InternalPortEnd;
        var sources = (SourceAddress ?? Array.Empty<string?>())
            .SelectMany(s => (s ?? string.Empty).Split(new[] { ',', ';', ' ' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(PortForwardDefinition.ParseNetwork)
            .ToList();
        var extras = new ForwardExtras(extEnd, intEnd, sources, string.IsNullOrEmpty(InInterface) ? null : InInterface, IncludeLocal);
        return new PortForwardRequest(Name, Protocol, external, ExternalPort.First, internalAddress, InternalPort?.First, mode, snat, Description, extras);
    }
}
