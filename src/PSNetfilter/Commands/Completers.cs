using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSNetfilter.Core.Processes;

namespace PSNetfilter.Commands;

/// <summary>Completes -NetworkNamespace with the names 'ip netns list' shows (the entries of /run/netns).</summary>
public sealed class NetworkNamespaceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        if (!Directory.Exists(SystemChecks.NetnsDirectory))
        {
            yield break;
        }

        var prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
        foreach (var name in Directory.EnumerateFiles(SystemChecks.NetnsDirectory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal))
        {
            if (name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                yield return new CompletionResult(name, name, CompletionResultType.ParameterValue, "network namespace " + name);
            }
        }
    }
}

/// <summary>Completes -Name with the names of existing forwards in the -NetworkNamespace given so far.</summary>
public sealed class PortForwardNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var ns = fakeBoundParameters["NetworkNamespace"] as string;
        IReadOnlyList<PortForward> forwards;
        try
        {
            var host = new NetfilterHost(string.IsNullOrEmpty(ns) ? null : ns);
            var manager = new PortForwardManagerQuiet(host);
            forwards = manager.Get();
        }
        catch (Exception ex) when (ex is NetfilterException or IOException or InvalidOperationException)
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

    /// <summary>Reads forwards without writing anything to the pipeline (completion has none).</summary>
    private sealed class PortForwardManagerQuiet : PSNetfilter.Core.Apply.IChangeObserver
    {
        private readonly NetfilterHost _host;

        public PortForwardManagerQuiet(NetfilterHost host) => _host = host;

        public IReadOnlyList<PortForward> Get()
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            return new PSNetfilter.Core.Apply.PortForwardManager(_host, this).GetAsync(cts.Token).GetAwaiter().GetResult();
        }

        public bool ShouldProcess(string target, string action) => false;

        public void Failed(NetfilterException error)
        {
        }

        public void Verbose(string message)
        {
        }

        public void Warning(string message)
        {
        }
    }
}
