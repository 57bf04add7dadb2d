using System.Management.Automation;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Commands;

/// <summary>
/// Remove-PortForward: by -Name (wildcards) or by piped forwards. Deletes exactly the rules of each forward,
/// the whole pipeline as one iptables-restore per family and namespace.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "PortForward", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = NameSet)]
[OutputType(typeof(PortForward))]
public sealed class RemovePortForwardCommand : PSNetfilterCmdlet
{
    private const string NameSet = "Name";
    private const string ObjectSet = "InputObject";

    private readonly Dictionary<string, List<NameSelector>> _queued = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(PortForwardNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    [Parameter(Mandatory = true, ParameterSetName = ObjectSet, ValueFromPipeline = true)]
    public PortForward[] InputObject { get; set; } = Array.Empty<PortForward>();

    /// <summary>
    /// The piped object itself when it binds by its Name property: PowerShell binds a piped forward that way when
    /// -NetworkNamespace is given, and the forward still acts on its own namespace (NetworkNamespaceMismatch).
    /// </summary>
    [Parameter(ParameterSetName = NameSet, ValueFromPipeline = true, DontShow = true)]
    public PortForward? PipedObject { get; set; }

    [Parameter(ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [Parameter(ParameterSetName = ObjectSet)]
    [ArgumentCompleter(typeof(NetworkNamespaceCompleter))]
    public string? NetworkNamespace { get; set; }

    /// <summary>Output the removed forwards.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == ObjectSet || PipedObject is not null)
        {
            foreach (var f in ParameterSetName == ObjectSet ? InputObject : new[] { PipedObject! })
            {
                try
                {
                    Queue(NamespaceOf(f, NetworkNamespace), NameSelector.Literal(f.Name));
                }
                catch (NetfilterException ex)
                {
                    WriteFailure(ex);
                }
            }

            return;
        }

        try
        {
            var ns = PipedNamespace(NetworkNamespace);
            foreach (var selector in ParseNames(Name))
            {
                Queue(ns, selector);
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
            var manager = CreateManager(ns);
            try
            {
                using var session = Run(ct => manager.OpenAsync(ct));
                var missing = Run(ct => manager.MissingAsync(session.Snapshot.Forwards));
                manager.PlanRemoves(session, _queued[key], missing);
                Flush();
                var results = Run(ct => manager.CommitAsync(session, ct));

                // Accept rules -AcceptInOtherTables put into other tables go with their forward.
                var removed = results.Where(r => r.Kind == ChangeKind.Removed).Select(r => r.Forward.Name).ToList();
                Run(async ct =>
                {
                    await manager.RemoveAcceptRulesAsync(removed, ct).ConfigureAwait(false);
                    return removed.Count;
                });
                if (PassThru)
                {
                    foreach (var r in results)
                    {
                        WriteObject(Output.WithChange(r));
                    }
                }
            }
            catch (NetfilterException ex)
            {
                ThrowFailure(ex);
            }
        }
    }

    private void Queue(string? networkNamespace, NameSelector selector)
    {
        var ns = NetworkNamespaceName.Check(networkNamespace);
        if (ns is not null)
        {
            SystemChecks.ValidateNetworkNamespace(ns);
        }

        var key = ns ?? string.Empty;
        if (!_queued.TryGetValue(key, out var list))
        {
            _queued[key] = list = new List<NameSelector>();
            _order.Add(key);
        }

        list.Add(selector);
    }
}
