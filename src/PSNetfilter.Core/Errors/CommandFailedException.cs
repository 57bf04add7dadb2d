namespace PSNetfilter;

/// <summary>
/// A process exited non-zero: the one typed process failure, with the command line, exit code and stderr. Its
/// <see cref="NetfilterException.ErrorId"/> names the tool (<see cref="ToolFailure.ErrorIdFor"/>).
/// </summary>
public sealed class CommandFailedException : NetfilterException
{
    /// <param name="program">The program that failed (inside <c>nsenter</c> for a namespace); its name picks the error id.</param>
    /// <param name="hint">What to look at next, appended to the message ("See: journalctl -u UNIT").</param>
    public CommandFailedException(string command, int exitCode, string standardError, int? failedLine = null, string? failedInput = null, object? target = null, string? program = null, string? hint = null)
        : base(
            ToolFailure.ErrorIdFor(program ?? ToolFailure.ProgramOf(command)),
            FailureKind.OperationFailed,
            BuildMessage(command, exitCode, standardError, failedLine, failedInput) + (hint is null ? string.Empty : " " + hint),
            target)
    {
        Command = command;
        ExitCode = exitCode;
        StandardError = standardError;
        FailedLine = failedLine;
        FailedInput = failedInput;
    }

    public string Command { get; }

    public int ExitCode { get; }

    public string StandardError { get; }

    /// <summary>For iptables-restore: the payload line it named ("Error occurred at line: N").</summary>
    public int? FailedLine { get; }

    /// <summary>The text of that payload line.</summary>
    public string? FailedInput { get; }

    /// <summary>
    /// For a payload applied as one iptables-restore per table: whether some of it may be in the kernel (another
    /// table's process succeeded, or a process failed without naming a line, so it may have committed first).
    /// Null for a single process, where the failed line tells.
    /// </summary>
    public bool? PartlyApplied { get; init; }

    private static string BuildMessage(string command, int exitCode, string stderr, int? line, string? input)
    {
        var msg = $"'{command}' failed with exit code {exitCode}: {stderr.Trim()}";
        if (line is not null)
        {
            msg += $" (payload line {line}: {input})";
        }

        return msg;
    }
}
