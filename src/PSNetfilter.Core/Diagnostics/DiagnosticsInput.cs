using System.Net;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Diagnostics;

/// <summary>What the checks look at, gathered once per namespace.</summary>
public sealed class DiagnosticsInput
{
    public required IReadOnlyList<PortForward> Forwards { get; init; }

    public required IReadOnlyDictionary<IpFamily, bool> ForwardingEnabled { get; init; }

    /// <summary>What the backend found in its own layout (<see cref="Backends.INetfilterBackend.CheckAsync"/>).</summary>
    public IReadOnlyList<PortForwardFinding> BackendFindings { get; init; } = Array.Empty<PortForwardFinding>();

    /// <summary>TCP connect results from inside the namespace to each forward's internal endpoint (absent: not tested).</summary>
    public IReadOnlyDictionary<string, bool> Reachable { get; init; } = new Dictionary<string, bool>();

    /// <summary>Per forward: connections that never saw a reply (conntrack [UNREPLIED]); absent when unknown.</summary>
    public IReadOnlyDictionary<string, int> Unreplied { get; init; } = new Dictionary<string, int>();

    /// <summary>The whole nftables ruleset of the namespace (<c>nft -j list ruleset</c>); null when nft is not installed.</summary>
    public NftJson.NftRuleset? Nftables { get; init; }

    /// <summary>Per internal address: the interface the gateway routes it through, when known.</summary>
    public IReadOnlyDictionary<IPAddress, string> RouteDevices { get; init; } = new Dictionary<IPAddress, string>();

    /// <summary>The gateway's interfaces and addresses (<see cref="ForwardChecks"/>); null when unknown.</summary>
    public GatewayInventory? Gateway { get; init; }
}
