namespace PSNetfilter;

/// <summary>An input that can never succeed (bad port, bad address, bad name...).</summary>
public sealed class PortForwardValidationException : NetfilterException
{
    public PortForwardValidationException(string errorId, string message, object? target = null)
        : base(errorId, FailureKind.InvalidArgument, message, target)
    {
    }
}
