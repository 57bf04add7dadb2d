using System.Text;
using CliWrap;
using CliWrap.Buffered;

namespace PSNetfilter.Core.Host;

/// <summary>One process to run: a program and its arguments as a list (never a shell string), and optional stdin.</summary>
public sealed record ProcessRequest(string Program, IReadOnlyList<string> Arguments, string? StandardInput = null)
{
    /// <summary>
    /// Writes stdin while the process runs, for input that is not known when it starts (an iptables-restore
    /// started before its change is planned, or fed while a pipeline still arrives): the process starts at once
    /// and reads what this writes until it returns. Used instead of <see cref="StandardInput"/>.
    /// </summary>
    public Func<Stream, CancellationToken, Task>? InputWriter { get; init; }

    /// <summary>The command line for logs and errors; arguments with spaces are quoted for reading only.</summary>
    public string Display => string.Join(' ', new[] { Program }.Concat(Arguments).Select(a => a.Contains(' ') ? $"'{a}'" : a));
}

public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>The one funnel every process goes through; tests swap in a fake.</summary>
public interface IProcessRunner
{
    Task<ProcessResult> RunAsync(ProcessRequest request, CancellationToken cancellationToken);
}

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
