using System.Management.Automation;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Processes;

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

    private readonly Dictionary<string, List<string>> _names = new(StringComparer.Ordinal);

    [Parameter(Position = 0, ParameterSetName = NameSet, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(PortForwardNameCompleter))]
    public string[]? Name { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ObjectSet, ValueFromPipeline = true)]
    public PortForward[] InputObject { get; set; } = Array.Empty<PortForward>();

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
            if (ParameterSetName == ObjectSet)
            {
                foreach (var f in InputObject)
                {
                    Add(MyInvocation.BoundParameters.ContainsKey(nameof(NetworkNamespace)) ? NetworkNamespace : f.NetworkNamespace, f.Name);
                }
            }
            else
            {
                foreach (var n in Name ?? new[] { "*" })
                {
                    Add(NetworkNamespace, n);
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
        foreach (var (key, names) in _names)
        {
            var ns = key.Length == 0 ? null : key;
            try
            {
                if (ns is not null)
                {
                    SystemChecks.ValidateNetworkNamespace(ns);
                }

                var patterns = names.Select(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase)).ToList();
                var units = PSNetfilter.Core.Persistence.BootSetReader.FindInstalled("/");
                var persisted = units.Where(u => u.NetworkNamespace == ns).SelectMany(u => u.ForwardNames).ToHashSet(StringComparer.Ordinal);
                var manager = new PSNetfilter.Core.Apply.PortForwardManager(CreateHost(ns), this) { PersistedUnits = units, IsPersisted = persisted.Contains };
                var (findings, known) = Run(ct => manager.DiagnoseAsync(n => patterns.Any(p => p.IsMatch(n)), !NoConnect, ct));
                foreach (var literal in names.Where(n => !WildcardPattern.ContainsWildcardCharacters(n) && !known.Contains(n)))
                {
                    WriteFailure(new NetfilterException("PortForwardNotFound", FailureKind.ObjectNotFound, $"No port forward named '{literal}' exists{(ns is null ? string.Empty : $" in network namespace '{ns}'")}.", literal));
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

    private void Add(string? networkNamespace, string name)
    {
        var key = NetworkNamespaceName.Check(networkNamespace) ?? string.Empty;
        if (!_names.TryGetValue(key, out var list))
        {
            _names[key] = list = new List<string>();
        }

        list.Add(name);
    }
}
