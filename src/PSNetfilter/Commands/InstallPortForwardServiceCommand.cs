using System.Management.Automation;
using PSNetfilter.Core.Persistence;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Commands;

/// <summary>
/// Install-PortForwardService: saves exactly the given forwards (piped PortForward objects, or -ForwardName
/// from the live ruleset) as the boot set of a systemd oneshot unit, enables it, and starts it when systemd
/// runs this machine. Everything is checked before anything is written; the files are replaced atomically.
/// </summary>
[Cmdlet(VerbsLifecycle.Install, "PortForwardService", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = ObjectSet)]
[OutputType(typeof(PortForwardService))]
public sealed class InstallPortForwardServiceCommand : PSNetfilterCmdlet
{
    private const string ObjectSet = "InputObject";
    private const string NameSet = "ForwardName";

    private readonly List<PortForward> _forwards = new();

    /// <summary>Forwards from Get-PortForward or New-PortForward (by value: the definitions are saved as they are).</summary>
    [Parameter(ValueFromPipeline = true, ParameterSetName = ObjectSet)]
    [AllowNull]
    [AllowEmptyCollection]
    public object?[]? InputObject { get; set; }

    /// <summary>Selects live forwards by name (wildcards) in -NetworkNamespace.</summary>
    [Parameter(Mandatory = true, ParameterSetName = NameSet)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(PortForwardNameCompleter))]
    public string[] ForwardName { get; set; } = Array.Empty<string>();

    /// <summary>The unit name; default psnetfilter.service (psnetfilter-NS.service with -NetworkNamespace).</summary>
    [Parameter]
    [Alias("UnitName")]
    public string? Name { get; set; }

    /// <summary>The named network namespace the unit restores the forwards into (with ip netns exec).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NetworkNamespaceCompleter))]
    public string? NetworkNamespace { get; set; }

    /// <summary>Install under this directory (an image being built), as systemctl --root does; default /.</summary>
    [Parameter]
    public string? Root { get; set; }

    /// <summary>Write and enable the unit, but do not start it.</summary>
    [Parameter]
    public SwitchParameter NoStart { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName != ObjectSet || InputObject is null)
        {
            return;
        }

        foreach (var item in InputObject)
        {
            if (item is null)
            {
                continue;
            }

            var value = item is PSObject pso ? pso.BaseObject : item;
            if (value is PortForward forward)
            {
                try
                {
                    NamespaceOf(forward, NetworkNamespace);
                }
                catch (NetfilterException ex)
                {
                    ThrowFailure(ex); // nothing has been written yet, and a set is never saved without a forward given
                }

                _forwards.Add(forward);
                continue;
            }

            // Nothing has been written yet: stop here, so a set is never saved without a forward the user gave.
            ThrowFailure(NotAForward(item));
        }
    }

    protected override void EndProcessing()
    {
        try
        {
            var (ns, unit, root) = ResolveServiceTarget(Name, NetworkNamespace, Root);

            if (ParameterSetName == NameSet)
            {
                _forwards.AddRange(NameSelector.SelectAll(Run(ct => CreateManager(ns).GetAsync(ct)), ForwardName, ns)); // a literal that matches nothing ends here: nothing was installed
            }
            else
            {
                foreach (var f in _forwards.Where(f => !string.Equals(f.NetworkNamespace, ns, StringComparison.Ordinal)))
                {
                    WriteWarning($"Port forward '{f.Name}' was read from {Where(f.NetworkNamespace)}, but {unit} restores it into {Where(ns)}." + (f.NetworkNamespace is null ? string.Empty : $" Use -NetworkNamespace {f.NetworkNamespace} to restore it where it was."));
                }
            }

            // Each forward is restored into the backend that holds it now.
            var set = new BootSet(unit, ns, _forwards.Select(f => (f.Definition, f.Backend ?? BackendCatalog.Default)));
            if (ns is not null && root == "/" && !File.Exists(Path.Combine(SystemChecks.NetnsDirectory, ns)))
            {
                WriteWarning($"The network namespace '{ns}' does not exist now; it must exist when {unit} starts.");
            }

            var manager = CreateServiceManager();
            var prepared = Run(ct => manager.PrepareInstallAsync(set, root, ct));
            var service = Run(ct => manager.InstallAsync(prepared, NoStart, ct));
            if (service is not null)
            {
                WriteObject(service);
            }
        }
        catch (NetfilterException ex)
        {
            ThrowFailure(ex);
        }
    }

    private static NetfilterException NotAForward(object item)
    {
        var pso = item as PSObject;
        var typeName = pso?.TypeNames.FirstOrDefault() ?? item.GetType().FullName ?? "object";
        var hint = typeName.StartsWith("Deserialized.", StringComparison.Ordinal)
            ? " A deserialized forward (Import-Clixml, remoting, jobs) cannot be persisted: read it again with Get-PortForward."
            : " Pipe the objects Get-PortForward or New-PortForward output, or use -ForwardName.";
        return new NetfilterException(
            "InvalidForwardObject",
            FailureKind.InvalidArgument,
            $"The input '{Printable(item.ToString() ?? string.Empty)}' ({typeName}) is not a PSNetfilter port forward.{hint} Nothing was installed.",
            item);
    }

    private static string Printable(string s)
    {
        var text = new string(s.Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return text.Length > 80 ? text[..77] + "..." : text;
    }

    /// <summary>-ForwardName: the live forwards of the namespace whose names match; a literal name must exist.</summary>
}
