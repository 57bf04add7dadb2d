using System.Text;
using CliWrap;
using CliWrap.Buffered;

namespace PSNetfilter.Core.Host;

/// <summary>Runs processes with CliWrap: no shell, arguments passed as a list, LC_ALL=C for stable messages.</summary>
public sealed class CliWrapProcessRunner : IProcessRunner
{
    public static readonly CliWrapProcessRunner Instance = new();

    public async Task<ProcessResult> RunAsync(ProcessRequest request, CancellationToken cancellationToken)
    {
        var command = Cli.Wrap(request.Program)
            .WithArguments(request.Arguments)
            .WithEnvironmentVariables(e => e.Set("LC_ALL", "C"))
            .WithValidation(CommandResultValidation.None);
        if (request.InputWriter is { } writer)
        {
            command = command.WithStandardInputPipe(PipeSource.Create(writer));
        }
        else if (request.StandardInput is not null)
        {
            command = command.WithStandardInputPipe(PipeSource.FromString(request.StandardInput, new UTF8Encoding(false)));
        }

        var result = await command.ExecuteBufferedAsync(cancellationToken).ConfigureAwait(false);
        return new ProcessResult(result.ExitCode, result.StandardOutput, result.StandardError);
    }
}
