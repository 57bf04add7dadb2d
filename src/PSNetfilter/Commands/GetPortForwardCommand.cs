using System.Management.Automation;
using PSNetfilter.Core.Processes;

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
            var ns = NetworkNamespaceName.Check(NetworkNamespace);
            // Persisted: the forward is in a boot set installed on this machine for this namespace.
            var persisted = PSNetfilter.Core.Persistence.BootSetReader.PersistedNames("/", ns);
            var manager = new PSNetfilter.Core.Apply.PortForwardManager(CreateHost(ns), this) { IsPersisted = persisted.Contains };
            System.Net.IPAddress? internalFilter = InternalAddress is null ? null : PortForwardDefinition.ParseAddress(InternalAddress, "InternalAddress");
            if (ns is not null)
            {
                SystemChecks.ValidateNetworkNamespace(ns);
            }

            var all = Run(ct => manager.GetAsync(ct));
            var patterns = (Name ?? Array.Empty<string>()).Select(n => (Text: n, Pattern: WildcardPattern.Get(n, WildcardOptions.IgnoreCase))).ToList();
            var matchedPatterns = new HashSet<string>(StringComparer.Ordinal);
            foreach (var f in all)
            {
                if (patterns.Count > 0)
                {
                    var hit = patterns.Where(p => p.Pattern.IsMatch(f.Name)).ToList();
                    if (hit.Count == 0)
                    {
                        continue;
                    }

                    hit.ForEach(h => matchedPatterns.Add(h.Text));
                }

                if ((Protocol is not null && f.Protocol != Protocol)
                    || (ExternalPort is not null && (ExternalPort < f.ExternalPort || ExternalPort > f.ExternalPortEnd))
                    || (internalFilter is not null && !f.InternalAddress.Equals(internalFilter))
                    || (Family is not null && f.Family != Family))
                {
                    continue;
                }

                WriteObject(f);
            }

            // Never listed as forwards (the kernel does not have them), but never silently forgotten either.
            foreach (var m in Run(ct => manager.MissingAsync(all)).Where(m => patterns.Count == 0 || patterns.Any(p => p.Pattern.IsMatch(m.Name))))
            {
                var finding = PSNetfilter.Core.Diagnostics.MissingForwardCheck.Recorded(m, manager.IntentPath);
                WriteWarning($"{finding.What} {finding.Why} Fix: {finding.Fix}");
            }

            foreach (var p in patterns.Where(p => !WildcardPattern.ContainsWildcardCharacters(p.Text) && !matchedPatterns.Contains(p.Text)))
            {
                var where = ns is null ? "on this host" : $"in network namespace '{ns}'";
                WriteFailure(new NetfilterException("PortForwardNotFound", FailureKind.ObjectNotFound, $"No port forward named '{p.Text}' exists {where}.", p.Text));
            }
        }
        catch (NetfilterException ex)
        {
            WriteFailure(ex);
        }
    }
}
