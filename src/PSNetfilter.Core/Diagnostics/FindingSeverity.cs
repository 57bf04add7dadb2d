namespace PSNetfilter.Core.Diagnostics;

public enum FindingSeverity
{
    Info,
    Warning,
    Error,
}
