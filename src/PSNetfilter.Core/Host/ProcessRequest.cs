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
