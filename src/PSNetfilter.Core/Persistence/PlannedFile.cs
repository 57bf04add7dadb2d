namespace PSNetfilter.Core.Persistence;

/// <summary>One file (or the enabling symlink) of a unit: where it goes and what happens to it.</summary>
public sealed record PlannedFile(string TargetPath, string HostPath, byte[]? Content, string? LinkTarget, UnixFileMode Mode, FileChange Change)
{
    public bool IsLink => LinkTarget is not null;

    public override string ToString() => $"{HostPath} ({Change.ToString().ToLowerInvariant()})";
}
