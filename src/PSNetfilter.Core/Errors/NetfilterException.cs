namespace PSNetfilter;

/// <summary>What kind of failure an exception stands for; the cmdlet layer maps it to an ErrorCategory.</summary>
public enum FailureKind
{
    InvalidArgument,
    ObjectNotFound,
    ResourceExists,
    PermissionDenied,
    NotInstalled,
    OperationFailed,
    InvalidData,
    OperationStopped,
}

/// <summary>Base of every failure the core reports. <see cref="ErrorId"/> is a stable contract.</summary>
public class NetfilterException : Exception
{
    public NetfilterException(string errorId, FailureKind kind, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
    }

    /// <summary>Stable identifier, e.g. <c>InvalidPort</c>.</summary>
    public string ErrorId { get; }

    public FailureKind Kind { get; }

    /// <summary>The value or object the failure is about.</summary>
    public object? Target { get; }

    /// <summary>What the user can do about it, when known.</summary>
    public string? RecommendedAction { get; init; }
}

/// <summary>An input that can never succeed (bad port, bad address, bad name...).</summary>
public sealed class PortForwardValidationException : NetfilterException
{
    public PortForwardValidationException(string errorId, string message, object? target = null)
        : base(errorId, FailureKind.InvalidArgument, message, target)
    {
    }
}

/// <summary>A process (iptables-restore, ip, ...) exited non-zero.</summary>
public sealed class CommandFailedException : NetfilterException
{
    public CommandFailedException(string command, int exitCode, string standardError, int? failedLine = null, string? failedInput = null, object? target = null)
        : base(
            "IptablesCommandFailed",
            FailureKind.OperationFailed,
            BuildMessage(command, exitCode, standardError, failedLine, failedInput),
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

/// <summary>iptables-save output the parser could not read.</summary>
public sealed class RulesetParseException : NetfilterException
{
    public RulesetParseException(int lineNumber, string line, string reason)
        : base("RulesetParseError", FailureKind.InvalidData, $"Cannot parse iptables-save output at line {lineNumber}: {reason}: {line}", line)
    {
        LineNumber = lineNumber;
    }

    public int LineNumber { get; }
}
