namespace PSNetfilter.Core.Engine;

/// <summary>One planned change: create (New only), replace (both) or remove (Old only).</summary>
public sealed record PendingChange(PortForwardDefinition? New, PortForward? Old);
