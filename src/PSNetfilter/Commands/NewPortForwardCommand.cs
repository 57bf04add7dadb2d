using System.Diagnostics;
using System.Management.Automation;
using PSNetfilter.Core.Engine;

namespace PSNetfilter.Commands;

/// <summary>
/// New-PortForward: validates each piped item in ProcessRecord, then applies the whole pipeline in
/// EndProcessing as one iptables-restore per family and namespace.
/// </summary>
[Cmdlet(VerbsCommon.New, "PortForward", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(PortForward))]
public sealed class NewPortForwardCommand : PSNetfilterCmdlet, IDisposable
{
    private AddPipeline? _pipeline;
    private EngineIntrinsics? _engine;

    // For the "Timing:" line of -Debug: the first item's arrival and the time spent inside ProcessRecord.
    private long _firstRecord;
    private long _recordTicks;
    private int _records;

    /// <summary>The parameters that bind from a piped object's properties, found once by reflection.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(PortForwardNameCompleter))]
    public string? Name { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    public Protocol Protocol { get; set; } = Protocol.Tcp;

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AddressTransformation]
    public string? ExternalAddress { get; set; }

    /// <summary>A port (8080) or a range (8000-8010).</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [PortRangeTransformation]
    [ValidatePortRange]
    public PortRange ExternalPort { get; set; }

    /// <summary>Last port of the external range; binds from piped forwards (ExternalPortEnd property).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [BlankToNull]
    [ValidatePortRange]
    public int? ExternalPortEnd { get; set; }

    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [AddressTransformation]
    public string InternalAddress { get; set; } = string.Empty;

    /// <summary>A port, or a range of the same size as the external one; default: the external port(s).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [PortRangeTransformation]
    [ValidatePortRange]
    public PortRange? InternalPort { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [BlankToNull]
    [ValidatePortRange]
    public int? InternalPortEnd { get; set; }

    /// <summary>Addresses or networks allowed to use the forward (CIDR); others are not forwarded.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AddressTransformation]
    public string[]? SourceAddress { get; set; }

    /// <summary>The interface traffic must arrive on (eth0, or a prefix such as wan+).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? InInterface { get; set; }

    /// <summary>Also make the forward reachable from the gateway itself (nat/OUTPUT).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [SwitchTransformation]
    public SwitchParameter IncludeLocal { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AddressTransformation]
    public string? SnatAddress { get; set; }

    [Parameter]
    public SwitchParameter Masquerade { get; set; }

    [Parameter]
    public SwitchParameter NoSnat { get; set; }

    /// <summary>Binds SnatMode from piped forwards (Get-PortForward | New-PortForward); the switches are the interactive form.</summary>
    /// <remarks>A blank CSV cell is "not given" (the route's source address, or the switches); Protocol has no such state: a blank one is an error.</remarks>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [BlankToNull]
    public SnatMode? SnatMode { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    [AllowNull]
    public string? Description { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkNamespaceCompleter))]
    public string? NetworkNamespace { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>
    /// Where a hand-written nftables table (nftables.service) would drop the forward's traffic, insert an accept
    /// rule for exactly this forward at the top of that chain, tagged psnf:v1:NAME:accept and removed with the forward.
    /// </summary>
    [Parameter]
    public SwitchParameter AcceptInOtherTables { get; set; }

    /// <summary>
    /// The backend the forwards go to: Iptables, Nftables or Auto. A forward of the same name that the other backend
    /// holds moves to this one (reported Replaced; its definition may stay the same). Without it, the preference
    /// ($PSNetfilterBackend, PSNETFILTER_BACKEND) decides, and existing forwards stay where they are.
    /// </summary>
    [Parameter]
    public BackendPreference Backend { get; set; }

    protected override BackendPreference? BackendParameter => CommandLine.Contains(nameof(Backend)) ? Backend : null;

    /// <summary>
    /// The piped object itself, so that a property whose value PowerShell could not convert (and therefore
    /// silently left unbound, e.g. Protocol 'sctp') is reported instead of falling back to a default.
    /// </summary>
    [Parameter(ValueFromPipeline = true, DontShow = true)]
    public PSObject? InputObject { get; set; }

    protected override void ProcessRecord()
    {
        var started = Stopwatch.GetTimestamp();
        if (_records++ == 0)
        {
            _firstRecord = started;
        }

        try
        {
            // A blank CSV cell reaches the parameter as null (ConvertFrom-Csv and Import-Csv give a blank last cell
            // as $null), which would mean the host: a piped row that has the column but no name in it is refused.
            // Only a PortForward (from Get-PortForward) carries $null for the host's own namespace.
            if (!CommandLine.Contains(nameof(NetworkNamespace)) && InputObject is { } piped && piped.BaseObject is not PortForward
                && piped.Properties[nameof(NetworkNamespace)] is { } column && string.IsNullOrWhiteSpace(column.Value as string))
            {
                NetworkNamespaceName.Check(column.Value as string ?? string.Empty);
            }

            PipelineBinding.Check(this, InputObject, CommandLine, ref _engine);
            var request = new PortForwardParameters
            {
                Name = Name,
                Protocol = Protocol,
                ExternalAddress = ExternalAddress,
                ExternalAddressGiven = CommandLine.Contains(nameof(ExternalAddress)),
                ExternalPort = ExternalPort,
                ExternalPortEnd = ExternalPortEnd,
                InternalAddress = InternalAddress,
                InternalPort = InternalPort,
                InternalPortGiven = CommandLine.Contains(nameof(InternalPort)),
                InternalPortEnd = InternalPortEnd,
                SourceAddress = SourceAddress,
                InInterface = InInterface,
                IncludeLocal = IncludeLocal.IsPresent,
                SnatAddress = SnatAddress,
                Masquerade = Masquerade.IsPresent,
                NoSnat = NoSnat.IsPresent,
                SnatMode = SnatMode,
                Description = Description,
            }.ToRequest();
            request.Validate();
            _pipeline ??= new AddPipeline(CreateManager, this, this, Force, WhatIfRequested, ConfirmRequested);
            _pipeline.Add(NetworkNamespaceName.Check(NetworkNamespace), request);
        }
        catch (NetfilterException ex)
        {
            WriteFailure(ex);
        }
        finally
        {
            _recordTicks += Stopwatch.GetTimestamp() - started;
        }
    }

    protected override void EndProcessing()
    {
        try
        {
            var ended = Stopwatch.GetTimestamp();
            if (_records > 0)
            {
                // Between the items is PowerShell: the upstream command and the binding of each item's properties.
                WriteDebug($"Timing: {_records} item(s) in {Timing.Ms(_firstRecord, ended)}: {Timing.Ms(0, _recordTicks)} in ProcessRecord, the rest between items.");
            }

            foreach (var (manager, results) in _pipeline?.Finish() ?? Enumerable.Empty<(PortForwardManager, IReadOnlyList<ChangeResult>)>())
            {
                var written = Stopwatch.GetTimestamp();
                foreach (var result in results)
                {
                    WriteObject(Output.WithChange(result));
                }

                // The same ForeignTableDrop check as Test-PortForward: never silent when another table drops the traffic.
                var checking = Stopwatch.GetTimestamp();
                var forwards = results.Select(r => r.Forward).ToList();

                // A persisted forward that moved to another backend moves in the units that persist it too.
                if (results.Any(r => r.Kind == ChangeKind.Replaced))
                {
                    CreateServiceManager().FollowBackends(forwards[0].NetworkNamespace, results.Where(r => r.Kind == ChangeKind.Replaced).Select(r => r.Forward).ToList());
                }

                foreach (var finding in Run(ct => manager.CheckForeignTablesAsync(forwards, AcceptInOtherTables, ct)))
                {
                    WriteWarning($"{finding.Forward}: {finding.What} {finding.Why} Fix: {finding.Fix}");
                }

                WriteDebug($"Timing: results written in {Timing.Ms(written, checking)}, other tables checked in {Timing.Ms(checking)}.");
            }

            if (_records > 0)
            {
                WriteDebug($"Timing: EndProcessing {Timing.Ms(ended)}.");
            }
        }
        catch (NetfilterException ex)
        {
            ThrowFailure(ex);
        }
    }

    public void Dispose() => _pipeline?.Dispose();
}
