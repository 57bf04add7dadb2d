namespace PSNetfilter.Core.Engine;

/// <summary>The cmdlet side of a change: confirmation, per-item errors, and messages.</summary>
public interface IChangeObserver
{
    /// <summary>ShouldProcess: false skips the item (WhatIf, or the user said no).</summary>
    bool ShouldProcess(string target, string action);

    /// <summary>One item failed; the others go on.</summary>
    void Failed(NetfilterException error);

    void Verbose(string message);

    void Warning(string message);

    /// <summary>The plan, item by item (-Debug).</summary>
    void Debug(string message)
    {
    }
}
