namespace PSNetfilter.Core.Engine;

/// <summary>An observer for read-only callers with nowhere to write (tab completion): says no, writes nothing.</summary>
public sealed class SilentObserver : IChangeObserver
{
    public static readonly SilentObserver Instance = new();

    public bool ShouldProcess(string target, string action) => false;

    public void Failed(NetfilterException error)
    {
    }

    public void Verbose(string message)
    {
    }

    public void Warning(string message)
    {
    }
}
