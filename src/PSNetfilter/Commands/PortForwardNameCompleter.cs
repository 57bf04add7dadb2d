using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Commands;

/// <summary>Completes -Name with the names of existing forwards in the -NetworkNamespace given so far.</summary>
public sealed class PortForwardNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var ns = fakeBoundParameters["NetworkNamespace"] as string;
        IReadOnlyList<PortForward> forwards;
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var host = new NetfilterHost(string.IsNullOrEmpty(ns) ? null : ns);
            var manager = new PortForwardManager(host, SilentObserver.Instance, BackendCatalog.CreateSet(BackendCatalog.Default, host));
            forwards = manager.GetAsync(cts.Token).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is NetfilterException or IOException or InvalidOperationException or OperationCanceledException)
        {
            yield break;
        }

        var prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
        foreach (var f in forwards)
        {
            if (f.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                yield return new CompletionResult(f.Name, f.Name, CompletionResultType.ParameterValue, f.ToString());
            }
        }
    }
}
