using PSNetfilter.Core.Engine;

namespace PSNetfilter.Core.Backends;

/// <summary>What a commit applied: the changes the kernel took, and whether anything at all reached it.</summary>
public sealed record CommitOutcome(IReadOnlyList<PendingChange> Applied, bool AnyApplied);
