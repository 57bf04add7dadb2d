using System.Management.Automation;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Commands;

/// <summary>
/// Test-PortForward: checks forwards against the live kernel state and writes one finding object per problem
/// (severity, what, why, the fix). No output means no problem was found.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "PortForward", DefaultParameterSetName = NameSet)]
[OutputType(typeof(PortForwardFinding))]
public sealed class TestPortForwardCommand : PSNetfilterCmdlet
{
    private const string NameSet = "Name";
    private const string ObjectSet = "InputObject";

    private readonly NamespaceQueue<NameSelector> _names = new(checkExists: false); // checked once, when the pipeline ends

    [Parameter(Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(PortForwardNameCompleter))]
    public string[]? Name { get; set; }

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

    /// <summary>Skip the TCP connect from the gateway to each internal endpoint.</summary>
    [Parameter]
    public SwitchParameter NoConnect { get; set; }

    protected override void ProcessRecord()
    {
        try
        {
            if (ParameterSetName == ObjectSet || PipedObject is not null)
            {
                foreach (var f in ParameterSetName == ObjectSet ? InputObject : new[] { PipedObject! })
                {
                    try
                    {
                        Add(NamespaceOf(f, NetworkNamespace), NameSelector.Literal(f.Name));
                    }
                    catch (NetfilterException ex)
                    {
                        WriteFailure(ex);
                    }
                }
            }
            else
            {
                var ns = PipedNamespace(NetworkNamespace);
                foreach (var selector in ParseNames(Name ?? new[] { "*" }))
                {
                    Add(ns, selector);
                }
            }
        }
        catch (NetfilterException ex)
        {
            WriteFailure(ex); // this item only (a blank -NetworkNamespace, say): the others are still tested
        }
    }

    protected override void EndProcessing()
    {
        foreach (var (ns, names) in _names.InOrder())
        {
            try
            {
                if (ns is not null)
                {
                    SystemChecks.ValidateNetworkNamespace(ns);
                }

                var units = BootSetReader.FindInstalled("/");
                var persisted = units.Where(u => u.NetworkNamespace == ns).SelectMany(u => u.ForwardNames).ToHashSet(PortForwardNames.Comparer);
                var manager = CreateManager(ns, persisted.Contains, units);
                var (findings, known) = Run(ct => manager.DiagnoseAsync(names, !NoConnect, ct));
                foreach (var missing in NameSelector.Unmatched(names, known))
                {
                    WriteFailure(PortForwardNames.NotFound(missing.Text, ns));
                }

                foreach (var finding in findings)
                {
                    WriteObject(finding);
                }

                if (findings.Count == 0)
                {
                    WriteVerbose("No problem found.");
                }
            }
            catch (NetfilterException ex)
            {
                WriteFailure(ex);
            }
        }
    }

    private void Add(string? networkNamespace, NameSelector selector) => _names.Add(networkNamespace, selector);
}
