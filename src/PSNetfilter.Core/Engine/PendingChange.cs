namespace PSNetfilter.Core.Engine;

/// <summary>One planned change: create (New only), replace (both) or remove (Old only).</summary>
public sealed record PendingChange(PortForwardDefinition? New, PortForward? Old)
{
    /// <summary>The backend the new forward goes to; null: the manager's backend (its preferred one).</summary>
    public string? Backend { get; init; }
}
