using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSNetfilter.Core.Host;

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
