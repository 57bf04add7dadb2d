namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>Where a module chain hangs: the built-in chain that jumps to it.</summary>
public sealed record ChainHook(string Table, string BuiltinChain, string Chain)
{
    /// <summary>The spec of the jump rule, as iptables-save prints it.</summary>
    public string JumpSpec => "-j " + Chain;
}
