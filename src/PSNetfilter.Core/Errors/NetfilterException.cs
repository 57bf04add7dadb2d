namespace PSNetfilter;

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
