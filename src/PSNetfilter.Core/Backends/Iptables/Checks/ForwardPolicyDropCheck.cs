using PSNetfilter.Core.Diagnostics;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>ForwardPolicyDrop: filter/FORWARD drops by policy and neither the jump nor the forward's accept rule is there.</summary>
public static class ForwardPolicyDropCheck
{
    public static IEnumerable<PortForwardFinding> Evaluate(PortForward f, Ruleset ruleset)
    {
        var filter = ruleset.Table("filter");
        var policy = filter.GetChain("FORWARD")?.Policy;
        var hasJump = ChangePlanner.HasJump(filter, RuleLayout.Forward);
        if (policy is "DROP" or "REJECT" && (!hasJump || f.MissingRules.Contains(ForwardPart.Forward) || f.UnreachableRules.Contains(ForwardPart.Forward)))
        {
            yield return new(f.Name, FindingSeverity.Error, "ForwardPolicyDrop",
                "The FORWARD policy is DROP and nothing accepts this forward's traffic.",
                hasJump ? "The forward's FORWARD accept rule is missing." : "The jump from FORWARD to PSNF-FORWARD is missing.",
                $"New-PortForward -Force for '{f.Name}' puts the accept rule and the jump back.");
        }
    }
}
