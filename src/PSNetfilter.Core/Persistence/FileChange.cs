namespace PSNetfilter.Core.Persistence;

/// <summary>What installing does to one file.</summary>
public enum FileChange
{
    Unchanged,
    Created,
    Updated,
    Removed,
}
