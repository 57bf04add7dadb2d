using System.Collections.Concurrent;
using System.Management.Automation;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Persistence;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Commands;

/// <summary>
/// Shared base of the cmdlets. It turns StopProcessing (Ctrl+C) into a CancellationToken, runs the core's
/// async calls from the pipeline thread, and funnels messages written on other threads (verbose process
/// lines, per-item errors) back to the pipeline thread, where PowerShell requires them.
/// </summary>
public abstract class PSNetfilterCmdlet : PSCmdlet, IChangeObserver, ICmdletThread
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentQueue<Action> _pending = new();

    protected CancellationToken StopToken => _stopping.Token;

    /// <summary>A host for a namespace whose -Verbose shows every process and payload.</summary>
    protected NetfilterHost CreateHost(string? networkNamespace) =>
        new(networkNamespace, log: m => _pending.Enqueue(() => WriteVerbose(m)));

    /// <summary>The manager of a namespace, over every backend (<see cref="BackendCatalog.CreateSet"/>), new forwards going to the chosen one.</summary>
    protected PortForwardManager CreateManager(string? networkNamespace) => CreateManager(networkNamespace, null, null);

    protected PortForwardManager CreateManager(string? networkNamespace, Func<string, bool>? isPersisted, IReadOnlyList<BootSetInfo>? units)
    {
        var (preferred, chosen) = _backend ??= ChooseBackend();
        var host = CreateHost(networkNamespace);
        return new PortForwardManager(host, this, BackendCatalog.CreateSet(preferred, host))
        {
            MoveToChosenBackend = chosen,
            IsPersisted = isPersisted,
            PersistedUnits = units ?? Array.Empty<BootSetInfo>(),
        };
    }

    private (string Backend, bool Chosen)? _backend;

    /// <summary>-Backend of the command, where it has one; null: the preference decides.</summary>
    protected virtual BackendPreference? BackendParameter => null;

    /// <summary>
    /// The backend new forwards go to: -Backend, else $PSNetfilterBackend, else the environment variable
    /// PSNETFILTER_BACKEND, else iptables. Only -Backend moves forwards another backend holds.
    /// </summary>
    /// <exception cref="NetfilterException">InvalidBackendPreference.</exception>
    private (string Backend, bool Chosen) ChooseBackend()
    {
        if (BackendParameter is { } given)
        {
            return (BackendCatalog.Resolve(given), true);
        }

        var preference = GetVariableValue("PSNetfilterBackend") ?? Environment.GetEnvironmentVariable("PSNETFILTER_BACKEND");
        var text = (preference is PSObject pso ? pso.BaseObject : preference)?.ToString();
        if (string.IsNullOrWhiteSpace(text))
        {
            return (BackendCatalog.Default, false);
        }

        if (!Enum.TryParse<BackendPreference>(text.Trim(), ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
        {
            throw new NetfilterException(
                "InvalidBackendPreference",
                FailureKind.InvalidArgument,
                $"The backend preference '{PortForwardDefinition.Printable(text)}' ($PSNetfilterBackend or PSNETFILTER_BACKEND) is not one of Auto, Iptables, Nftables.",
                text);
        }

        return (BackendCatalog.Resolve(parsed), false);
    }

    /// <summary>A service manager whose systemctl calls and script runs show in -Verbose.</summary>
    protected PortForwardServiceManager CreateServiceManager() =>
        new(new SystemdControl(log: m => ((IChangeObserver)this).Verbose(m)), this);

    /// <summary>
    /// What Install- and Uninstall-PortForwardService act on: the namespace (validated), the unit name and the
    /// root folder (a PowerShell path resolved to a file system path).
    /// </summary>
    protected (string? Namespace, string Unit, string Root) ResolveServiceTarget(string? name, string? networkNamespace, string? root)
    {
        var ns = NetworkNamespaceName.Check(networkNamespace);

        var unit = ServiceNames.Resolve(name, ns);
        return (ns, unit, ServicePaths.NormalizeRoot(string.IsNullOrEmpty(root) ? "/" : SessionState.Path.GetUnresolvedProviderPathFromPSPath(root)));
    }

    /// <summary>
    /// The -Name values as selectors (PortForwardNames' one rule); a value that is neither a valid name nor a
    /// valid pattern is an error for that value (InvalidName, InvalidNamePattern) and is left out.
    /// </summary>
    protected List<NameSelector> ParseNames(IEnumerable<string?> names)
    {
        var selectors = new List<NameSelector>();
        foreach (var name in names)
        {
            try
            {
                selectors.Add(NameSelector.Parse(name));
            }
            catch (NetfilterException ex)
            {
                WriteFailure(ex);
            }
        }

        return selectors;
    }

    /// <summary>
    /// The namespace a piped forward acts on: its own. An explicit -NetworkNamespace naming another one is an
    /// error for that item (NetworkNamespaceMismatch) rather than acting on a same-named forward elsewhere.
    /// </summary>
    protected string? NamespaceOf(PortForward forward, string? networkNamespace)
    {
        if (!CommandLine.Contains("NetworkNamespace"))
        {
            return forward.NetworkNamespace;
        }

        var given = NetworkNamespaceName.Check(networkNamespace); // a blank or malformed name is refused first, never taken as the host
        if (string.Equals(given, forward.NetworkNamespace, StringComparison.Ordinal))
        {
            return given;
        }

        throw new NetfilterException(
            "NetworkNamespaceMismatch",
            FailureKind.InvalidArgument,
            $"Port forward '{forward.Name}' was read from {Where(forward.NetworkNamespace)}, but -NetworkNamespace names {Where(given)}: a piped forward acts on the namespace it came from. Leave out -NetworkNamespace, or select the forward by -Name there.",
            forward);
    }

    private bool _namespaceFromPipeline;

    /// <summary>
    /// The namespace a name-selected item acts on. A CSV row whose NetworkNamespace cell is blank reaches the
    /// parameter as $null (ConvertFrom-Csv and Import-Csv give a blank last cell so), which would mean the host:
    /// once an earlier item of the pipeline bound a namespace, an item without one is refused
    /// (InvalidNetworkNamespace), as an empty name is, rather than acting on the host.
    /// </summary>
    protected string? PipedNamespace(string? value)
    {
        if (CommandLine.Contains("NetworkNamespace"))
        {
            return NetworkNamespaceName.Check(value);
        }

        if (value is not null)
        {
            _namespaceFromPipeline = true;
            return NetworkNamespaceName.Check(value);
        }

        return _namespaceFromPipeline ? NetworkNamespaceName.Check(string.Empty) : null;
    }

    protected static string Where(string? ns) => ns is null ? "the host's network namespace" : $"network namespace '{ns}'";

    /// <summary>-WhatIf, given or by $WhatIfPreference: nothing will be applied.</summary>
    protected bool WhatIfRequested =>
        MyInvocation.BoundParameters.TryGetValue("WhatIf", out var given)
            ? given is SwitchParameter { IsPresent: true }
            : LanguagePrimitives.IsTrue(GetVariableValue("WhatIfPreference"));

    /// <summary>ShouldProcess may ask: -Confirm, or $ConfirmPreference at or below the command's impact (Medium).</summary>
    protected bool ConfirmRequested
    {
        get
        {
            if (MyInvocation.BoundParameters.TryGetValue("Confirm", out var given))
            {
                return given is SwitchParameter { IsPresent: true };
            }

            return GetVariableValue("ConfirmPreference") is ConfirmImpact preference && preference != ConfirmImpact.None && preference <= ConfirmImpact.Medium;
        }
    }

    /// <summary>Runs an async core call to completion on the pipeline thread, then writes what it queued.</summary>
    protected T Run<T>(Func<CancellationToken, Task<T>> call)
    {
        try
        {
            var task = call(StopToken);
            if (task.IsCompleted)
            {
                return task.GetAwaiter().GetResult(); // finished without waiting (nothing to look up, say)
            }

            var streaming = true;
            while (!((IAsyncResult)task).AsyncWaitHandle.WaitOne(50))
            {
                if (streaming && !_stopping.IsCancellationRequested)
                {
                    try
                    {
                        Flush(); // stream -Verbose lines (commands, payloads) while the call runs
                    }
                    catch (PipelineStoppedException)
                    {
                        // The pipeline is stopping: keep waiting, since a started iptables-restore is never
                        // abandoned (the lock is released only after it ends).
                        streaming = false;
                    }
                }
            }

            var result = task.GetAwaiter().GetResult();
            if (!streaming)
            {
                throw new PipelineStoppedException();
            }

            return result;
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
        finally
        {
            Flush();
        }
    }

    /// <summary>Writes the messages queued by the core (must run on the pipeline thread).</summary>
    protected void Flush()
    {
        while (_pending.TryDequeue(out var write))
        {
            write();
        }
    }

    /// <summary>
    /// The parameters given on the command line (bound before BeginProcessing); the others come from the
    /// pipeline. Not MyInvocation.BoundParameters later on: it keeps the names of parameters an earlier piped
    /// item bound.
    /// </summary>
    protected IReadOnlySet<string> CommandLine { get; private set; } = new HashSet<string>();

    /// <summary>Every cmdlet reads or changes netfilter state, which needs root: say so before any input is read.</summary>
    protected override void BeginProcessing()
    {
        CommandLine = new HashSet<string>(MyInvocation.BoundParameters.Keys, StringComparer.OrdinalIgnoreCase);
        try
        {
            SystemChecks.RequireRoot();
            _backend = ChooseBackend(); // a preference that names no backend stops the command before anything is queued
        }
        catch (NetfilterException ex)
        {
            ThrowFailure(ex);
        }
    }

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>A non-terminating error for one item.</summary>
    protected void WriteFailure(NetfilterException error)
    {
        WriteError(ErrorMapper.ToErrorRecord(error));
    }

    /// <summary>A terminating error: nothing further can succeed.</summary>
    protected void ThrowFailure(NetfilterException error)
    {
        ThrowTerminatingError(ErrorMapper.ToErrorRecord(error));
    }

    bool IChangeObserver.ShouldProcess(string target, string action) => ShouldProcess(target, action);

    void IChangeObserver.Failed(NetfilterException error) => _pending.Enqueue(() => WriteFailure(error));

    void IChangeObserver.Verbose(string message) => _pending.Enqueue(() => WriteVerbose(message));

    void IChangeObserver.Warning(string message) => _pending.Enqueue(() => WriteWarning(message));

    void IChangeObserver.Debug(string message) => _pending.Enqueue(() => WriteDebug(message));

    T ICmdletThread.Run<T>(Func<CancellationToken, Task<T>> call) => Run(call);

    void ICmdletThread.Flush() => Flush();
}
