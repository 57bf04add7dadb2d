namespace PSNetfilter.Core.Engine;

/// <summary>The outcome for one forward; <see cref="Changed"/> tells automation (Ansible) whether anything was applied.</summary>
public sealed record ChangeResult(PortForward Forward, ChangeKind Kind)
{
    public bool Changed => Kind != ChangeKind.Unchanged;
}
