using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using PSNetfilter.Commands;

namespace PSNetfilter.Tests.Support;

/// <summary>Hosts the three cmdlets in-process, in a fresh runspace per call.</summary>
internal static class PsRunner
{
    public static InitialSessionState SessionState()
    {
        var iss = InitialSessionState.CreateDefault2();
        iss.Commands.Add(new SessionStateCmdletEntry("New-PortForward", typeof(NewPortForwardCommand), null));
        iss.Commands.Add(new SessionStateCmdletEntry("Get-PortForward", typeof(GetPortForwardCommand), null));
        iss.Commands.Add(new SessionStateCmdletEntry("Remove-PortForward", typeof(RemovePortForwardCommand), null));
        return iss;
    }

    public sealed record Result(Collection<PSObject> Output, IReadOnlyList<ErrorRecord> Errors, IReadOnlyList<string> Warnings, IReadOnlyList<string> Verbose)
    {
        public IEnumerable<string> ErrorIds => Errors.Select(e => e.FullyQualifiedErrorId);
    }

    /// <summary>Runs a script; statement-terminating and non-terminating errors both end up in Errors.</summary>
    public static Result Run(string script, IDictionary<string, object?>? variables = null)
    {
        using var runspace = RunspaceFactory.CreateRunspace(SessionState());
        runspace.Open();
        if (variables is not null)
        {
            foreach (var (k, v) in variables)
            {
                runspace.SessionStateProxy.SetVariable(k, v);
            }
        }

        using var ps = PowerShell.Create();
        ps.Runspace = runspace;
        ps.AddScript(script);
        var errors = new List<ErrorRecord>();
        Collection<PSObject> output;
        try
        {
            output = ps.Invoke();
        }
        catch (RuntimeException ex)
        {
            output = new Collection<PSObject>();
            errors.Add(ex.ErrorRecord);
        }

        errors.InsertRange(0, ps.Streams.Error);
        return new Result(output, errors, ps.Streams.Warning.Select(w => w.Message).ToList(), ps.Streams.Verbose.Select(v => v.Message).ToList());
    }
}
