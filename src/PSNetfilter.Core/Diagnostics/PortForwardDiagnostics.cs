using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Diagnostics;

/// <summary>Pure checks over a gathered <see cref="DiagnosticsInput"/>; each finding says what to do.</summary>
public static class PortForwardDiagnostics
{
    public static IReadOnlyList<PortForwardFinding> Evaluate(DiagnosticsInput input)
    {
        var findings = new List<PortForwardFinding>();
        foreach (var family in input.Forwards.Select(f => f.Family).Distinct())
        {
            if (input.ForwardingEnabled.TryGetValue(family, out var on) && !on)
            {
                findings.Add(new(null, FindingSeverity.Error, "ForwardingDisabled",
                    $"{NetfilterHost.ForwardingKey(family)} is 0.",
                    "The kernel does not route packets between interfaces, so DNATed connections are dropped.",
                    $"sysctl -w {NetfilterHost.ForwardingKey(family)}=1 (New-PortForward does this; Install-PortForwardService persists it)."));
            }
        }

        findings.AddRange(input.BackendFindings.Where(x => x.Forward is null));
        var byForward = input.BackendFindings.Where(x => x.Forward is not null).ToLookup(x => x.Forward!, PortForwardNames.Comparer);
        foreach (var f in input.Forwards)
        {
            if (!f.IsComplete)
            {
                findings.Add(new(f.Name, f.MissingRules.Count > 0 || f.UnreachableRules.Count > 0 ? FindingSeverity.Error : FindingSeverity.Warning, "Drift",
                    $"Forward '{f.Name}' is {f.Status}.",
                    "Its kernel rules were changed outside PSNetfilter (deleted or added by hand, or by a firewall reload).",
                    f.DefinitionPartial
                        ? $"New-PortForward -Name '{f.Name}' -Force{Ns(f)} with its full definition (source allow-list, interface, description) restores it whole."
                        : $"Get-PortForward -Name '{f.Name}'{Ns(f)} | New-PortForward -Force{Ns(f)} restores it whole."));
            }

            findings.AddRange(byForward[f.Name]);
            if (input.Nftables is { } nft)
            {
                findings.AddRange(ForeignTableCheck.Evaluate(f, nft, input.RouteDevices.GetValueOrDefault(f.InternalAddress), input.Gateway?.DeviceOf(f.ExternalAddress)));
            }

            if (input.Gateway is not null)
            {
                findings.AddRange(ForwardChecks.Check(f.Definition, input.Gateway));
            }

            if (input.Reachable.TryGetValue(f.Name, out var reachable) && !reachable)
            {
                findings.Add(new(f.Name, FindingSeverity.Error, "InternalUnreachable",
                    $"Nothing accepted a TCP connection to {f.InternalEndpoint} from the gateway.",
                    "The internal host is down, nothing listens on the port, a firewall on it refuses, or the gateway has no route to it.",
                    $"Check the service on {f.InternalAddress} and the route to it (ip route get {f.InternalAddress})."));
            }

            if (f.SnatMode == SnatMode.None && input.Unreplied.TryGetValue(f.Name, out var unreplied) && unreplied > 0)
            {
                findings.Add(new(f.Name, FindingSeverity.Error, "NoReturnRoute",
                    $"{unreplied} connection(s) through '{f.Name}' never got a reply.",
                    "With -NoSnat the internal host sees the client's address and must send replies back through this gateway; it does not (no route via the gateway, or a firewall on it).",
                    $"Route the clients' networks via the gateway on {f.InternalAddress}, or use source NAT (New-PortForward -Force without -NoSnat)."));
            }
        }

        return findings;
    }

    private static string Ns(PortForward f) => f.NetworkNamespace is null ? string.Empty : $" -NetworkNamespace {f.NetworkNamespace}";
}
