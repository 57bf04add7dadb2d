using System.Management.Automation;
using PSNetfilter.Core.Engine;

namespace PSNetfilter.Commands;

internal static class Output
{
    /// <summary>
    /// The forward, with a Change note property (Created, Replaced, Unchanged, Removed) so scripts and
    /// Ansible can tell whether anything was applied.
    /// </summary>
    public static PSObject WithChange(ChangeResult result)
    {
        var pso = PSObject.AsPSObject(result.Forward);
        pso.Properties.Add(new PSNoteProperty("Change", result.Kind.ToString()));
        return pso;
    }
}
