using System.Management.Automation;
using PSNetfilter.Core.Engine;

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

    private readonly NamespaceQueue<NameSelector> _queue = new();

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
        foreach (var (ns, selectors) in _queue.InOrder())
        {
            try
            {
                var results = RemoveRun.Apply(CreateManager(ns), selectors, this);
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

    private void Queue(string? networkNamespace, NameSelector selector) => _queue.Add(networkNamespace, selector);
}
