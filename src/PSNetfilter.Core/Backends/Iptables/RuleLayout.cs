using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

using static PSNetfilter.Core.Backends.ForwardTag;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// The rule layout in the kernel, in one place: chain names, the comment tag, and the rules of a forward.
/// Every token written here comes from a validated definition and is checked against a closed alphabet
/// (no spaces, quotes, newlines), so the rendered text cannot carry anything but what it says.
/// </summary>
public static partial class RuleLayout
{
    /// <summary>Prefix of every module chain; the module owns these chains and nothing else.</summary>
    public const string ChainPrefix = "PSNF-";

    public static readonly ChainHook PreRouting = new("nat", "PREROUTING", "PSNF-PREROUTING");
    public static readonly ChainHook Output = new("nat", "OUTPUT", "PSNF-OUTPUT");
    public static readonly ChainHook PostRouting = new("nat", "POSTROUTING", "PSNF-POSTROUTING");
    public static readonly ChainHook Forward = new("filter", "FORWARD", "PSNF-FORWARD");

    /// <summary>All hooks, in payload order (nat before filter).</summary>
    public static readonly IReadOnlyList<ChainHook> Hooks = new[] { PreRouting, Output, PostRouting, Forward };

    /// <summary>Tables the module writes to, in payload order.</summary>
    public static readonly IReadOnlyList<string> Tables = new[] { "nat", "filter" };

    public static ChainHook HookFor(ForwardPart role) => role switch
    {
        ForwardPart.Dnat => PreRouting,
        ForwardPart.Local => Output,
        ForwardPart.Snat or ForwardPart.Hairpin => PostRouting,
        _ => Forward,
    };

    /// <summary>The rules of one forward: DNAT, then source NAT (unless None), then the FORWARD accept.</summary>
    public static IReadOnlyList<RenderedRule> Render(PortForwardDefinition d) => Render(d, null);

    /// <summary>
    /// As <see cref="Render(PortForwardDefinition)"/>; <paramref name="paths"/> shares the dispatch paths between
    /// the forwards of one batch (forwards in the same port ranges walk the same jumps).
    /// </summary>
    public static IReadOnlyList<RenderedRule> Render(PortForwardDefinition d, DispatchPathCache? paths)
    {
        var proto = ProtoName(d.Protocol);
        var rules = new List<RenderedRule>(4);
        var extPorts = PortSpec(d.ExternalPort, d.ExternalPortEnd, ':');
        var intPorts = PortSpec(d.InternalPort, d.InternalPortEnd, ':');
        var external = d.ExternalAddress is null ? null : HostPrefix(d.ExternalAddress);
        var @internal = HostPrefix(d.InternalAddress);
        var flags = FlagsSuffix(d);
        IReadOnlyList<DispatchStep> Path(ChainHook hook) =>
            paths is null ? PathTo(hook, d.Protocol, d.ExternalPort, d.ExternalPortEnd) : paths.Get(hook, d.Protocol, d.ExternalPort, d.ExternalPortEnd);
        var spec = new SpecWriter();

        // nat/PREROUTING: new connections to the external endpoint get the internal endpoint as destination;
        // one rule per allowed source network.
        var dnatTag = DnatTag(d);
        var dnatTarget = DnatTarget(d);
        var prePath = Path(PreRouting);
        for (var i = 0; i < Math.Max(1, d.SourceAddresses.Count); i++)
        {
            if (d.SourceAddresses.Count > 0)
            {
                spec.Add("-s").Add(NetworkSpec(d.SourceAddresses[i]));
            }

            DestinationMatch(spec, d, proto, external, extPorts, inInterface: true);
            spec.Add("-m").Add("comment").Add("--comment").Add(dnatTag).Add("-j").Add("DNAT").Add("--to-destination").Add(dnatTarget);
            rules.Add(Make(PreRouting, ForwardPart.Dnat, spec, prePath));
        }

        // nat/OUTPUT: the same DNAT for connections the gateway itself opens (-IncludeLocal).
        if (d.IncludeLocal)
        {
            DestinationMatch(spec, d, proto, external, extPorts, inInterface: false);
            spec.Add("-m").Add("comment").Add("--comment").Add(Tag(d.Name, "local") + flags).Add("-j").Add("DNAT").Add("--to-destination").Add(dnatTarget);
            rules.Add(Make(Output, ForwardPart.Local, spec, Path(Output)));
        }

        // nat/POSTROUTING: only connections this forward DNATed get their source rewritten (hairpin clients
        // on the internal network included, since they are DNATed connections of this forward too).
        if (d.SnatMode != SnatMode.None)
        {
            spec.Add("-d").Add(@internal).Add("-p").Add(proto).Add("-m").Add(proto).Add("--dport").Add(intPorts);
            spec.Add("-m").Add("conntrack").Add("--ctstate").Add("DNAT");
            if (external is not null)
            {
                spec.Add("--ctorigdst").Add(external);
            }

            spec.Add("--ctorigdstport").Add(extPorts).Add("-m").Add("comment").Add("--comment").Add(Tag(d.Name, "snat") + flags);
            if (d.SnatMode == SnatMode.Snat)
            {
                spec.Add("-j").Add("SNAT").Add("--to-source").Add(d.SnatAddress!.ToString());
            }
            else
            {
                spec.Add("-j").Add("MASQUERADE");
            }

            rules.Add(Make(PostRouting, ForwardPart.Snat, spec, Path(PostRouting)));
        }

        // nat/POSTROUTING, -NoSnat -IncludeLocal: hairpin clients (on the gateway's network towards the internal
        // host) are masqueraded, or the internal host would answer them directly and they would drop the reply.
        if (d.HairpinNetwork is { } hairpin)
        {
            spec.Add("-s").Add(NetworkSpec(hairpin)).Add("-d").Add(@internal).Add("-p").Add(proto).Add("-m").Add(proto).Add("--dport").Add(intPorts);
            spec.Add("-m").Add("conntrack").Add("--ctstate").Add("DNAT");
            if (external is not null)
            {
                spec.Add("--ctorigdst").Add(external);
            }

            spec.Add("--ctorigdstport").Add(extPorts).Add("-m").Add("comment").Add("--comment").Add(Tag(d.Name, "hairpin") + flags).Add("-j").Add("MASQUERADE");
            rules.Add(Make(PostRouting, ForwardPart.Hairpin, spec, Path(PostRouting)));
        }

        rules.Add(ForwardAccept(d, spec, "fwd", Path(Forward)));
        return rules;
    }

    /// <summary>
    /// The tag role of a FORWARD accept that the nftables backend writes into iptables' filter table for one of
    /// its forwards, where that table's FORWARD drops (<c>psnf:v1:NAME:nftfwd</c>): the same rule as an iptables
    /// forward's FORWARD accept, in the same chains, but not a part of an iptables forward
    /// (<see cref="ForwardReader"/> keeps it apart, in <see cref="OwnedState.MirrorsOf"/>).
    /// </summary>
    public const string MirrorRole = "nftfwd";

    /// <summary>
    /// The filter/FORWARD accept of <paramref name="d"/> tagged <see cref="MirrorRole"/>: what the nftables backend
    /// writes into iptables' FORWARD, laid out exactly as this backend's own FORWARD part (PSNF-FORWARD, its
    /// dispatch tree, the jump at the top of FORWARD).
    /// </summary>
    public static RenderedRule RenderForwardMirror(PortForwardDefinition d, DispatchPathCache? paths = null) =>
        ForwardAccept(d, new SpecWriter(), MirrorRole, paths is null ? PathTo(Forward, d.Protocol, d.ExternalPort, d.ExternalPortEnd) : paths.Get(Forward, d.Protocol, d.ExternalPort, d.ExternalPortEnd));

    /// <summary>
    /// filter/FORWARD: the connection this forward DNATed, identified by its conntrack tuples, in both directions
    /// and every state (related ICMP errors included), so a FORWARD policy of DROP does not stop it.
    /// </summary>
    private static RenderedRule ForwardAccept(PortForwardDefinition d, SpecWriter spec, string role, IReadOnlyList<DispatchStep> path)
    {
        var proto = ProtoName(d.Protocol);
        var extPorts = PortSpec(d.ExternalPort, d.ExternalPortEnd, ':');
        var intPorts = PortSpec(d.InternalPort, d.InternalPortEnd, ':');
        spec.Add("-m").Add("conntrack").Add("--ctstate").Add("DNAT").Add("--ctproto").Add(proto);
        if (d.ExternalAddress is not null)
        {
            spec.Add("--ctorigdst").Add(HostPrefix(d.ExternalAddress));
        }

        spec.Add("--ctorigdstport").Add(extPorts).Add("--ctreplsrc").Add(HostPrefix(d.InternalAddress)).Add("--ctreplsrcport").Add(intPorts);
        spec.Add("-m").Add("comment").Add("--comment").Add(Tag(d.Name, role) + FlagsSuffix(d)).Add("-j").Add("ACCEPT");
        return Make(Forward, ForwardPart.Forward, spec, path);
    }

    private static void DestinationMatch(SpecWriter spec, PortForwardDefinition d, string proto, string? external, string extPorts, bool inInterface)
    {
        if (external is not null)
        {
            spec.Add("-d").Add(external);
        }

        if (inInterface && d.InInterface is not null)
        {
            spec.Add("-i").Add(d.InInterface);
        }

        spec.Add("-p").Add(proto).Add("-m").Add(proto).Add("--dport").Add(extPorts);
        if (external is null)
        {
            spec.Add("-m").Add("addrtype").Add("--dst-type").Add("LOCAL");
        }
    }

    public static string ProtoName(Protocol p) => ProtocolName.Of(p);

    /// <summary>The DNAT rule's tag also carries the SNAT mode and the base64url description.</summary>
    public static string DnatTag(PortForwardDefinition d) =>
        Tag(d.Name, "dnat") + ":" + ModeCode(d.SnatMode) + ":" + EncodeDescription(d.Description) + FlagsSuffix(d);

    private static string FlagsSuffix(PortForwardDefinition d) => Flags(d) is { Length: > 0 } f ? ":" + f : string.Empty;

    public static string HostPrefix(IPAddress a) =>
        a + (a.AddressFamily == AddressFamily.InterNetworkV6 ? "/128" : "/32");

    /// <summary>"192.0.2.10:80", "[2001:db8::10]:80", or for a range "192.0.2.10:9000-9010/8000" (shifted by the external start).</summary>
    private static string DnatTarget(PortForwardDefinition d)
    {
        var ports = d.InternalPortEnd == d.InternalPort
            ? Port(d.InternalPort)
            : $"{Port(d.InternalPort)}-{Port(d.InternalPortEnd)}/{Port(d.ExternalPort)}";
        return d.InternalAddress.AddressFamily == AddressFamily.InterNetworkV6
            ? $"[{d.InternalAddress}]:{ports}"
            : $"{d.InternalAddress}:{ports}";
    }

    private static string Port(int p) => p.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// The dispatch path from a hooked chain down to the chain that holds a rule for external ports
    /// <paramref name="low"/>..<paramref name="high"/>. The tree has three levels keyed by the external port
    /// (ranges of 4096, 256 and 16 ports), so a packet walks at most 16 + 16 + 16 jumps and a leaf of at most
    /// 16 ports, however many forwards there are. nat/PREROUTING keys on the packet's destination port (per
    /// protocol); POSTROUTING and FORWARD key on the connection's original destination port, so replies take
    /// the same path. A port range that spans buckets stays at the deepest level that holds it whole.
    /// </summary>
    public static IReadOnlyList<DispatchStep> PathTo(ChainHook hook, Protocol protocol, int low, int high)
    {
        var steps = new List<DispatchStep>(3);
        var parent = hook.Chain;
        var name = BaseName(hook, protocol);
        foreach (var shift in new[] { 12, 8, 4 })
        {
            if (low >> shift != high >> shift)
            {
                break;
            }

            var bucket = low >> shift;
            name += ((bucket & 0xF)).ToString("X", System.Globalization.CultureInfo.InvariantCulture);
            var lo = bucket << shift;
            var hi = lo + (1 << shift) - 1;
            var range = lo.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + hi.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var spec = hook == PreRouting || hook == Output
                ? $"-p {ProtoName(protocol)} -m {ProtoName(protocol)} --dport {range} -j {name}"
                : $"-m conntrack --ctorigdstport {range} -j {name}";
            steps.Add(new DispatchStep(hook.Table, parent, name, spec));
            parent = name;
        }

        return steps;
    }

    /// <summary>How many levels of the dispatch tree hold ports <paramref name="low"/>..<paramref name="high"/> whole (0-3).</summary>
    internal static int DispatchDepth(int low, int high)
    {
        var depth = 0;
        for (var shift = 12; shift >= 4 && low >> shift == high >> shift; shift -= 4)
        {
            depth++;
        }

        return depth;
    }

    /// <summary>True for a chain of the dispatch tree below a hooked chain (PSNF-PRE-T1F9, PSNF-FWD-1F9, ...).</summary>
    public static bool IsDispatchChain(string chain) =>
        chain.StartsWith("PSNF-PRE-", StringComparison.Ordinal)
        || chain.StartsWith("PSNF-OUT-", StringComparison.Ordinal)
        || chain.StartsWith("PSNF-POST-", StringComparison.Ordinal)
        || chain.StartsWith("PSNF-FWD-", StringComparison.Ordinal);

    /// <summary>The chain a dispatch rule jumps to, when <paramref name="spec"/> is a bare jump to a module chain.</summary>
    public static string? DispatchTarget(string spec)
    {
        var j = spec.LastIndexOf("-j ", StringComparison.Ordinal);
        if (j < 0 || spec.Contains(TagPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var target = spec[(j + 3)..].Trim();
        return IsDispatchChain(target) && !target.Contains(' ') ? target : null;
    }

    private static string BaseName(ChainHook hook, Protocol protocol)
    {
        if (hook == PreRouting)
        {
            return protocol == Protocol.Tcp ? "PSNF-PRE-T" : "PSNF-PRE-U";
        }

        if (hook == Output)
        {
            return protocol == Protocol.Tcp ? "PSNF-OUT-T" : "PSNF-OUT-U";
        }

        return hook == PostRouting ? "PSNF-POST-" : "PSNF-FWD-";
    }

    private static RenderedRule Make(ChainHook hook, ForwardPart role, SpecWriter spec, IReadOnlyList<DispatchStep> path) =>
        new(hook.Table, path.Count == 0 ? hook.Chain : path[^1].Chain, role, spec.Take()) { Path = path };

    /// <summary>
    /// Builds a rule spec token by token, checking each against the closed alphabet. <see cref="Take"/> returns
    /// the spec and starts the next one.
    /// </summary>
    private sealed class SpecWriter
    {
        private readonly StringBuilder _text = new(256);

        public SpecWriter Add(string token)
        {
            if (token.Length == 0 || token.AsSpan().ContainsAnyExcept(SafeTokenChars))
            {
                // Unreachable for validated definitions: a guard, not an escape.
                throw new InvalidOperationException($"Refusing to render unsafe token '{PortForwardDefinition.Printable(token)}'.");
            }

            if (_text.Length > 0)
            {
                _text.Append(' ');
            }

            _text.Append(token);
            return this;
        }

        public string Take()
        {
            var text = _text.ToString();
            _text.Clear();
            return text;
        }
    }

    /// <summary>The closed alphabet of a rendered token: letters, digits and . _ : / + [ ] -.</summary>
    private static readonly SearchValues<char> SafeTokenChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/+[]-");
}
