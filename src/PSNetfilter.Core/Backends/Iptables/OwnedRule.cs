namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>A kernel rule the module owns: tagged <c>psnf:v1:NAME:ROLE</c> in a PSNF- chain.</summary>
public sealed record OwnedRule(string Name, ForwardPart Role, RuleLine Line, IReadOnlyDictionary<string, string> Options, string[] TagParts)
{
    public string Table => Line.Table;

    public string Chain => Line.Chain;

    /// <summary>A FORWARD accept of an nftables-backend forward (<see cref="RuleLayout.MirrorRole"/>), not a part of an iptables forward.</summary>
    public bool Mirror { get; init; }
}
