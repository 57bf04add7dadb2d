using CliWrap;
using CliWrap.Buffered;

namespace PSNetfilter.Core.Host;

/// <summary>The one funnel every process goes through; tests swap in a fake.</summary>
public interface IProcessRunner
{
    Task<ProcessResult> RunAsync(ProcessRequest request, CancellationToken cancellationToken);
}
