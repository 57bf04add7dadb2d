using PSNetfilter.Core.Diagnostics;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Says when the jump from filter/FORWARD to PSNF-FORWARD is no longer the first rule (Docker re-inserts its own
/// jumps at the top when dockerd restarts), what sits above it, and whether any of that can drop or reject the
/// forward's packets before they reach the module's accept.
/// </summary>
public static class ForwardJumpCheck
{
    public const string CheckName = "ForwardJumpNotFirst";

    public static PortForwardFinding? Evaluate(Ruleset ruleset)
    {
        var filter = ruleset.Table("filter");
        var forward = filter.Rules.Where(r => r.Chain == "FORWARD").OrderBy(r => r.Position).ToList();
        var jump = forward.FirstOrDefault(r => r.Spec == RuleLayout.Forward.JumpSpec);
        if (jump is null || jump.Position == 1)
        {
            return null;
        }

        var above = forward.Where(r => r.Position < jump.Position).ToList();
        var drops = filter.RulesReachedFrom(above).Where(r => RuleTokenizer.JumpTarget(r.Spec) is "DROP" or "REJECT").ToList();
        var tool = ruleset.Family == IpFamily.IPv4 ? "iptables" : "ip6tables";
        var what = $"The jump to {RuleLayout.Forward.Chain} is rule {jump.Position} of filter/FORWARD ({ruleset.Family}); above it: {string.Join("; ", above.Select(r => r.Spec))}.";
        var why = drops.Count > 0
            ? $"Rules above the jump see forwarded packets first, and some of them can drop or reject: {string.Join("; ", drops.Select(d => $"{d.Chain}: {d.Spec}"))}. A forward whose packets match one of them carries nothing."
            : "Rules above the jump see forwarded packets first. None of them drops or rejects, so the forwards still work, but another program moved in front of PSNetfilter (Docker does this when dockerd restarts).";
        return new PortForwardFinding(null, drops.Count > 0 ? FindingSeverity.Warning : FindingSeverity.Info, CheckName, what, why,
            $"{tool} -D FORWARD {RuleLayout.Forward.JumpSpec} && {tool} -I FORWARD 1 {RuleLayout.Forward.JumpSpec}")
        {
            Table = "filter",
            Chain = "FORWARD",
        };
    }
}
