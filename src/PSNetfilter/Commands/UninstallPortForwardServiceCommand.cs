using System.Management.Automation;

namespace PSNetfilter.Commands;

/// <summary>
/// Uninstall-PortForwardService: stops the unit (when systemd runs this machine), disables it and removes
/// its files. The live forwards stay unless -RemoveForwards, which removes exactly the saved ones.
/// </summary>
[Cmdlet(VerbsLifecycle.Uninstall, "PortForwardService", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class UninstallPortForwardServiceCommand : PSNetfilterCmdlet
{
    /// <summary>The unit name; default psnetfilter.service (psnetfilter-NS.service with -NetworkNamespace).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("UnitName")]
    public string? Name { get; set; }

    /// <summary>Only chooses the default unit name psnetfilter-NS.service.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NetworkNamespaceCompleter))]
    public string? NetworkNamespace { get; set; }

    /// <summary>The root the unit was installed under; default /.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? Root { get; set; }

    /// <summary>Also remove the saved forwards from the kernel (what the unit's stop does).</summary>
    [Parameter]
    public SwitchParameter RemoveForwards { get; set; }

    protected override void ProcessRecord()
    {
        try
        {
            var (_, unit, root) = ResolveServiceTarget(Name, NetworkNamespace, Root);
            var manager = CreateServiceManager();
            var prepared = Run(ct => manager.PrepareUninstallAsync(unit, root, ct));
            Run(ct => manager.UninstallAsync(prepared, RemoveForwards, ct));
        }
        catch (NetfilterException ex)
        {
            WriteFailure(ex);
        }
    }
}
