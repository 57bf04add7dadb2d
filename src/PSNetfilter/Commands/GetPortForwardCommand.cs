using System.Management.Automation;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Commands;

/// <summary>Get-PortForward: reads the live ruleset (one iptables-save per family) and rebuilds the forwards from it.</summary>
[Cmdlet(VerbsCommon.Get, "PortForward")]
[OutputType(typeof(PortForward))]
public sealed class GetPortForwardCommand : PSNetfilterCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(PortForwardNameCompleter))]
    public string[]? Name { get; set; }

    [Parameter]
    public Protocol? Protocol { get; set; }

    [Parameter]
    [ValidateRange(1, 65535)]
    public int? ExternalPort { get; set; }

    [Parameter]
    [AddressTransformation]
    public string? InternalAddress { get; set; }

    [Parameter]
    public IpFamily? Family { get; set; }

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkNamespaceCompleter))]
    public string? NetworkNamespace { get; set; }

    protected override void ProcessRecord()
    {
        try
        {
            var ns = PipedNamespace(NetworkNamespace);
            // Persisted: the forward is in a boot set installed on this machine for this namespace.
            var persisted = BootSetReader.PersistedNames("/", ns);
            var manager = CreateManager(ns, persisted.Contains, null);
            System.Net.IPAddress? internalFilter = InternalAddress is null ? null : PortForwardDefinition.ParseAddress(InternalAddress, "InternalAddress");
            if (ns is not null)
            {
                SystemChecks.ValidateNetworkNamespace(ns);
            }

            var selectors = ParseNames(Name ?? Array.Empty<string>());
            if (Name is { Length: > 0 } && selectors.Count == 0)
            {
                return; // every name given was refused: list nothing rather than everything
            }

            var filter = new ForwardFilter { Names = selectors, Protocol = Protocol, ExternalPort = ExternalPort, InternalAddress = internalFilter, Family = Family };
            var all = Run(ct => manager.GetAsync(ct));
            foreach (var f in all.Where(filter.Matches))
            {
                WriteObject(f);
            }

            // Never listed as forwards (the kernel does not have them), but never silently forgotten either.
            foreach (var m in Run(ct => manager.MissingAsync(all)).Where(m => selectors.Count == 0 || selectors.Any(s => s.Matches(m.Name))))
            {
                var finding = MissingForwardCheck.Recorded(m, manager.IntentPath);
                WriteWarning($"{finding.What} {finding.Why} Fix: {finding.Fix}");
            }

            foreach (var missing in NameSelector.Unmatched(selectors, all.Select(f => f.Name).ToList()))
            {
                WriteFailure(PortForwardNames.NotFound(missing.Text, ns));
            }
        }
        catch (NetfilterException ex)
        {
            WriteFailure(ex);
        }
    }
}
