using System.Management.Automation;
using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Commands;

/// <summary>
/// New-PortForward: validates each piped item in ProcessRecord, then applies the whole pipeline in
/// EndProcessing as one iptables-restore per family and namespace.
/// </summary>
[Cmdlet(VerbsCommon.New, "PortForward", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(PortForward))]
public sealed class NewPortForwardCommand : PSNetfilterCmdlet, IDisposable
{
    private readonly Dictionary<string, List<PortForwardRequest>> _queued = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<PortForwardDefinition>> _resolved = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();
    private StreamedChange? _stream;
    private bool _streamTried;

    /// <summary>The parameters that bind from a piped object's properties, found once by reflection.</summary>
    private static readonly Dictionary<string, System.Reflection.PropertyInfo> PipelineParameters = typeof(NewPortForwardCommand).GetProperties()
        .Where(p => p.GetCustomAttributes(typeof(ParameterAttribute), false).OfType<ParameterAttribute>().Any(a => a.ValueFromPipelineByPropertyName))
        .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);

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
    /// The piped object itself, so that a property whose value PowerShell could not convert (and therefore
    /// silently left unbound, e.g. Protocol 'sctp') is reported instead of falling back to a default.
    /// </summary>
    [Parameter(ValueFromPipeline = true, DontShow = true)]
    public PSObject? InputObject { get; set; }

    protected override void ProcessRecord()
    {
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

            var ns = NetworkNamespaceName.Check(NetworkNamespace);
            if (ns is not null && !_queued.ContainsKey(ns))
            {
                SystemChecks.ValidateNetworkNamespace(ns); // once per namespace and call
            }

            CheckPipelineValues();
            var request = BuildRequest();
            request.Validate();
            var key = ns ?? string.Empty;
            if (!_queued.TryGetValue(key, out var list))
            {
                _queued[key] = list = new List<PortForwardRequest>();
                _order.Add(key);
            }

            list.Add(request);
            if (_stream is not null && _stream.Key == key)
            {
                StreamLast(list);
            }
            else if (!_streamTried && list.Count >= PortForwardManager.StreamFromForwards)
            {
                _streamTried = true;
                StartStream(key, list);
            }
        }
        catch (NetfilterException ex)
        {
            WriteFailure(ex);
        }
    }

    protected override void EndProcessing()
    {
        foreach (var key in _order)
        {
            var ns = key.Length == 0 ? null : key;
            var streamed = _stream is not null && _stream.Key == key ? _stream : null;
            var manager = streamed?.Manager ?? CreateManager(ns);
            try
            {
                var definitions = _resolved.TryGetValue(key, out var early) ? early : new List<PortForwardDefinition>();
                definitions.AddRange(Run(ct => manager.ResolveAsync(_queued[key], ct)));
                IReadOnlyList<ChangeResult> results;
                if (streamed is not null)
                {
                    // The forwards that arrived while the change streamed are in the running restores already.
                    manager.PlanAdds(streamed.Session, definitions, Force);
                    Flush();
                    results = Run(ct => manager.CommitAsync(streamed.Session, ct));
                    _stream = null;
                    streamed.Session.Dispose();
                }
                else
                {
                    if (definitions.Count == 0)
                    {
                        continue;
                    }

                    using var session = Run(ct => manager.OpenAsync(ct, readForwarding: true, adding: WhatIfRequested ? null : definitions));
                    manager.PlanAdds(session, definitions, Force);
                    Flush();
                    results = Run(ct => manager.CommitAsync(session, ct));
                }

                // Written once the namespace lock is released, so a command further down the pipeline may take it.
                foreach (var result in results)
                {
                    WriteObject(Output.WithChange(result));
                }

                // The same ForeignTableDrop check as Test-PortForward: never silent when another table drops the traffic.
                var forwards = results.Select(r => r.Forward).ToList();
                var findings = Run(ct => manager.CheckForeignTablesAsync(forwards, AcceptInOtherTables, ct));

                foreach (var finding in findings)
                {
                    WriteWarning($"{finding.Forward}: {finding.What} {finding.Why} Fix: {finding.Fix}");
                }
            }
            catch (NetfilterException ex)
            {
                ThrowFailure(ex);
            }
        }
    }

    /// <summary>A stopped or failed pipeline: a change still streaming is abandoned (nothing of it applied) and its lock released.</summary>
    public void Dispose()
    {
        var streamed = _stream;
        _stream = null;
        streamed?.Session.Dispose();
    }

    /// <summary>
    /// From the <see cref="PortForwardManager.StreamFromForwards"/>th forward of a namespace on, the change
    /// streams: the forwards so far are resolved, the namespace is locked (only if the lock is free now) and
    /// read, and from then on every forward is planned as it arrives and its lines written to running
    /// iptables-restore processes, one per table, which parse them while the pipeline still runs. The end of
    /// the pipeline then only adds the deletions and COMMIT. Not with -WhatIf or -Confirm (a streamed forward
    /// is accepted as it arrives), and not when the lock is taken or the backend is iptables-legacy: then the
    /// change is made at the end, as for a short pipeline.
    /// </summary>
    private void StartStream(string key, List<PortForwardRequest> list)
    {
        if (WhatIfRequested || ConfirmRequested)
        {
            return;
        }

        var manager = CreateManager(key.Length == 0 ? null : key);
        var definitions = Run(ct => manager.ResolveAsync(list, ct));
        list.Clear();
        if (definitions.Count == 0)
        {
            _resolved[key] = definitions; // nothing to stream yet (every forward so far was refused): the end decides
            return;
        }

        ChangeSession? session = null;
        try
        {
            session = Run(ct => manager.TryOpenStreamingAsync(definitions, ct));
            if (session is null)
            {
                WriteVerbose("The namespace lock is taken or the backend is iptables-legacy: the forwards are applied when the pipeline ends.");
                _resolved[key] = definitions;
                return;
            }

            WriteVerbose($"{definitions.Count} forwards piped so far: the change streams to iptables-restore from here on, and the namespace stays locked until the pipeline ends.");
            _stream = new StreamedChange(key, manager, session);
            manager.PlanAdds(session, definitions, Force);
            Flush();
        }
        catch (NetfilterException ex)
        {
            _stream = null;
            session?.Dispose();
            ThrowFailure(ex);
        }
    }

    /// <summary>Plans and streams the forward just queued, unless it needs a route lookup: then it and every later one wait for the end, in order.</summary>
    private void StreamLast(List<PortForwardRequest> list)
    {
        var stream = _stream!;
        var request = list[^1];
        if (stream.Deferring || !stream.Manager.CanResolveWithoutProcesses(request))
        {
            stream.Deferring = true;
            return;
        }

        list.RemoveAt(list.Count - 1);
        var definitions = Run(ct => stream.Manager.ResolveAsync(new[] { request }, ct));
        stream.Manager.PlanAdds(stream.Session, definitions, Force);
        Flush();
    }

    private sealed record StreamedChange(string Key, PortForwardManager Manager, ChangeSession Session)
    {
        /// <summary>A forward needed a route lookup: it and all later ones are planned at the end.</summary>
        public bool Deferring { get; set; }
    }

    /// <summary>
    /// Each piped item is bound on its own. PowerShell leaves a by-property-name parameter whose value does not
    /// convert (Protocol 'sctp' or '', SnatMode 'Bogus') unbound without a word, and before each item it puts
    /// the parameters the previous item bound back to their defaults; MyInvocation.BoundParameters keeps the
    /// names of parameters bound for earlier items, so it cannot tell. So every property of the piped object
    /// that names a pipeline parameter (and was not given on the command line) is converted here the way the
    /// binder does (the parameter's transformations, then LanguagePrimitives) and compared with the value the
    /// parameter holds now: a value that does not convert, or that the parameter does not hold, is an
    /// InvalidPipelineValue error for this item, naming the forward, the property and the value as written.
    /// </summary>
    private void CheckPipelineValues()
    {
        if (InputObject is null || InputObject.BaseObject is PortForward)
        {
            return;
        }

        EngineIntrinsics? engine = null;
        foreach (var property in InputObject.Properties)
        {
            if (!PipelineParameters.TryGetValue(property.Name, out var parameter) || CommandLine.Contains(parameter.Name))
            {
                continue;
            }

            object? raw;
            try
            {
                raw = property.Value;
            }
            catch (GetValueException)
            {
                continue; // a property that throws on read is not bound by PowerShell either
            }

            if (raw is null)
            {
                continue; // $null: not given
            }

            engine ??= (EngineIntrinsics)GetVariableValue("ExecutionContext");
            if (BindsAs(parameter, raw, engine, out var expected) && SameValue(expected, parameter.GetValue(this)))
            {
                continue;
            }

            var name = InputObject.Properties["Name"]?.Value?.ToString();
            var type = Nullable.GetUnderlyingType(parameter.PropertyType) ?? parameter.PropertyType;
            var valid = type.IsEnum ? $" (valid: {string.Join(", ", Enum.GetNames(type))})" : string.Empty;
            throw new PortForwardValidationException(
                "InvalidPipelineValue",
                $"Port forward '{PortForwardDefinition.Printable(string.IsNullOrEmpty(name) ? "(no name)" : name)}': the piped {parameter.Name} '{PortForwardDefinition.Printable(raw.ToString() ?? string.Empty)}' is not a valid value for -{parameter.Name}{valid}. The item is skipped rather than created with a default.",
                raw);
        }
    }

    /// <summary>What the binder makes of <paramref name="raw"/> for <paramref name="parameter"/>; false when it cannot convert it.</summary>
    private static bool BindsAs(System.Reflection.PropertyInfo parameter, object raw, EngineIntrinsics engine, out object? value)
    {
        value = raw;
        try
        {
            foreach (var transformation in parameter.GetCustomAttributes(typeof(ArgumentTransformationAttribute), false).Cast<ArgumentTransformationAttribute>())
            {
                value = transformation.Transform(engine, value);
            }

            if (value is null)
            {
                return true;
            }

            value = LanguagePrimitives.ConvertTo(value, parameter.PropertyType, System.Globalization.CultureInfo.InvariantCulture);
            return true;
        }
        catch (Exception ex) when (ex is ArgumentTransformationMetadataException or PSInvalidCastException or InvalidCastException)
        {
            return false;
        }
    }

    private static bool SameValue(object? expected, object? actual) => (expected, actual) switch
    {
        (null, null) => true,
        (SwitchParameter a, SwitchParameter b) => a.IsPresent == b.IsPresent,
        (null, SwitchParameter b) => !b.IsPresent,
        (string a, string b) => string.Equals(a, b, StringComparison.Ordinal),
        (System.Collections.IEnumerable a, System.Collections.IEnumerable b) => a.Cast<object?>().SequenceEqual(b.Cast<object?>()),
        _ => Equals(expected, actual),
    };

    private PortForwardRequest BuildRequest()
    {
        var mode = SnatMode ?? PSNetfilter.SnatMode.Snat;
        if (Masquerade.IsPresent && NoSnat.IsPresent)
        {
            throw new PortForwardValidationException("ConflictingSnatOptions", "-Masquerade and -NoSnat exclude each other: choose one source NAT mode.", null);
        }

        if (Masquerade.IsPresent)
        {
            mode = PSNetfilter.SnatMode.Masquerade;
        }
        else if (NoSnat.IsPresent)
        {
            mode = PSNetfilter.SnatMode.None;
        }

        IPAddress? snat = null;
        if (!string.IsNullOrEmpty(SnatAddress))
        {
            if (mode != PSNetfilter.SnatMode.Snat)
            {
                throw new PortForwardValidationException("ConflictingSnatOptions", $"-SnatAddress sets an SNAT address; it cannot be combined with source NAT mode {mode}.", SnatAddress);
            }

            snat = PortForwardDefinition.ParseAddress(SnatAddress, "SnatAddress");
        }

        // An empty SnatAddress (a blank CSV cell) means "not given": the route decides.
        // A blank cell of a piped CSV row means "not given"; an explicit empty argument is an error.
        var externalText = string.IsNullOrWhiteSpace(ExternalAddress) && !CommandLine.Contains(nameof(ExternalAddress)) ? null : ExternalAddress;
        if (InternalPort is null && CommandLine.Contains(nameof(InternalPort)))
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
        var sources = (SourceAddress ?? Array.Empty<string>())
            .SelectMany(s => (s ?? string.Empty).Split(new[] { ',', ';', ' ' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Select(PortForwardDefinition.ParseNetwork)
            .ToList();
        var extras = new ForwardExtras(extEnd, intEnd, sources, string.IsNullOrEmpty(InInterface) ? null : InInterface, IncludeLocal.IsPresent);
        return new PortForwardRequest(Name, Protocol, external, ExternalPort.First, internalAddress, InternalPort?.First, mode, snat, Description, extras);
    }
}
