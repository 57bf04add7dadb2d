namespace PSNetfilter.Core.Engine;

/// <summary>What happened to one forward.</summary>
public enum ChangeKind
{
    Created,
    Replaced,
    Unchanged,
    Removed,
}
