namespace PSNetfilter;

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
