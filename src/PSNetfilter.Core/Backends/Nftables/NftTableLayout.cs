namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// The nftables backend's table: one <c>table inet psnetfilter</c> per namespace (IPv4 and IPv6 in one table),
/// and nothing else. This type holds its fixed part (chains, maps, sets and the dispatch rules that look them up);
/// <see cref="NftForwardRenderer"/> writes the part of each forward.
/// <para>
/// Base chains: <c>prerouting</c> (nat, priority dstnat), <c>output</c> (nat, priority -100, for -IncludeLocal),
/// <c>postrouting</c> (nat, priority srcnat) and <c>forward</c> (filter, priority filter). All have policy accept:
/// the table never drops, and a drop in another table at the same hook still drops our traffic (an accept ends only
/// the table it is in).
/// </para>
/// <para>
/// <b>Maps</b> (N forwards are N elements, one lookup per packet):
/// <list type="bullet">
/// <item><c>dnat4</c>/<c>dnat6</c>, <c>external address . protocol . external port(s) : internal address . internal port</c>,
/// for a "map forward": an explicit external address, no source allow-list, no in-interface, no -IncludeLocal.
/// A port range onto one internal port is one interval element; a range onto a range is one element per port
/// (nft 1.0.6 has no NAT port offset, iptables' <c>--to-destination A:9000-9010/8000</c>).</item>
/// <item><c>snat4</c>/<c>snat6</c> (<c>: snat address</c>) and the sets <c>masq4</c>/<c>masq6</c>, keyed
/// <c>internal address . protocol . internal port(s) . original destination . original port(s)</c> and reached only by
/// <c>ct status dnat</c>: iptables' <c>-d INT --dport P -m conntrack --ctstate DNAT --ctorigdst EXT --ctorigdstport P</c>.
/// A forward on any local address has the network <c>0.0.0.0/0</c> (<c>::/0</c>) as original destination.</item>
/// <item><c>accept4</c>/<c>accept6</c>, keyed <c>original destination . protocol . original port(s) . reply source .
/// reply port(s)</c> (iptables' <c>--ctorigdst --ctorigdstport --ctreplsrc --ctreplsrcport</c>), with an element counter:
/// the forward's Packets/Bytes (both directions, every packet, as the iptables FORWARD rule counts).</item>
/// </list>
/// These three serve every forward, map or rule forward alike.
/// </para>
/// <para>
/// <b>Exact and interval twins</b>: each of these maps and sets is two, <c>dnat4x</c> (a hash, no flags) beside
/// <c>dnat4</c> (<c>flags interval</c>), and so on. An element whose key has only host addresses and single ports (an
/// explicit external address, one port, or one element per port of a range onto a range) goes into the exact twin;
/// one with a port range or the any-address network <c>0.0.0.0/0</c> (<c>::/0</c>) into the interval twin. An interval
/// (pipapo) lookup of 10,000 elements costs the datapath about half its throughput; a hash lookup does not
/// (docs/PERFORMANCE.md). Each twin has its dispatch rule, the exact one first; a lookup that misses ends its rule as not
/// matching and the packet goes on to the next. The interval twins keep the names of the layout before the split: the
/// kernel refuses an <c>add</c> of an existing set with other flags, so a table written before keeps its elements
/// where they are, is read and changed as it is, and gets the exact twins and their rules from the skeleton.
/// The reader goes by an element's comment, not by its container: both twins give the same part.
/// </para>
/// <para>
/// <b>Rules</b>, one per forward and part, in this table's own chains, for what a map key cannot say:
/// the DNAT of a forward with a source allow-list (one rule per network, as iptables), an in-interface (<c>eth+</c>
/// becomes <c>iifname "eth*"</c>), no external address (<c>fib daddr type local</c>, iptables' addrtype LOCAL) or
/// -IncludeLocal (its nat output rule, and its prerouting DNAT with it so the two read back alike); and the hairpin
/// masquerade of -NoSnat -IncludeLocal (its key would need six fields; nft 1.0.6 encodes at most five types in a
/// concatenation). A range onto a range is <c>dnat ip to INT : tcp dport map { 8000 : 9000, ... }</c>.
/// Rules carry no counter, so re-adding them (the boot file flushes this table's chains and adds them again) loses
/// nothing.
/// </para>
/// <para>
/// <b>Ownership</b>: every element and rule of a forward has a comment <c>psnf:v1:NAME:ROLE</c>; the DNAT ones add
/// <c>:MODE[:FLAGS]</c> (<see cref="ForwardTag.Flags"/>). nft limits a comment to 128
/// characters, so the description (base64url, up to 160 characters) is kept in the set <c>notes</c> (type ifname):
/// element <c>"HASH.i"</c> with comment <c>psnf:v1:NAME:dI/N:CHUNK</c> (<see cref="NftNotes"/>). The fixed dispatch rules
/// carry <c>psnf:v1:@WHAT</c> ('@' is not allowed in a forward's name).
/// </para>
/// <para>
/// Checked with nft 1.0.6 (bookworm) and 1.1.3 (trixie: tests/pester/NftVersions.Tests.ps1 runs the backend's suites
/// and a boot set with it). Known to differ on 1.1.x: <c>nft -j</c> may print an element as
/// <c>{"elem": {"val": ...}}</c> or bare, both are read; the output chain's priority -100 is printed as
/// <c>dstnat</c>. 1.1.x accepts the same input text. nft 1.0.6 can crash listing a table that 1.1.3 wrote: use one
/// nft per namespace.
/// </para>
/// </summary>
public static class NftTableLayout
{
    public const string Family = "inet";

    public const string TableName = "psnetfilter";

    /// <summary>"inet psnetfilter": how every line of a script names the table.</summary>
    public const string Table = Family + " " + TableName;

    public const string Prerouting = "prerouting";
    public const string Output = "output";
    public const string Postrouting = "postrouting";
    public const string Forward = "forward";

    public const string Notes = "notes";

    /// <summary>Comment of a fixed dispatch rule: <c>psnf:v1:@dnat4</c>.</summary>
    public const string DispatchTagPrefix = "psnf:v1:@";

    /// <summary>nft 1.0.6 refuses a comment longer than this.</summary>
    public const int MaxCommentLength = 128;

    /// <summary>The base chains, in script order, with their declaration.</summary>
    public static readonly IReadOnlyList<(string Name, string Spec)> Chains = new[]
    {
        (Prerouting, "type nat hook prerouting priority dstnat; policy accept;"),
        (Output, "type nat hook output priority -100; policy accept;"),
        (Postrouting, "type nat hook postrouting priority srcnat; policy accept;"),
        (Forward, "type filter hook forward priority filter; policy accept;"),
    };

    /// <summary>Name of a per-family map or set: dnat4, snat6, ... (the interval twin; <c>dnat4x</c> with <paramref name="exact"/>).</summary>
    public static string Of(string kind, IpFamily family, bool exact = false) =>
        kind + (family == IpFamily.IPv6 ? "6" : "4") + (exact ? ExactSuffix : string.Empty);

    /// <summary>Suffix of the exact (hash) twin of a map or set: <c>dnat4x</c> beside the interval <c>dnat4</c>.</summary>
    public const string ExactSuffix = "x";

    /// <summary>"ip" or "ip6": the payload protocol and the NAT family of a forward.</summary>
    public static string Ip(IpFamily family) => family == IpFamily.IPv6 ? "ip6" : "ip";

    private static string Addr(IpFamily f) => f == IpFamily.IPv6 ? "ipv6_addr" : "ipv4_addr";

    private static readonly bool[] ExactFirst = { true, false };

    /// <summary>The maps and sets, in script order: name and the declaration between braces.</summary>
    public static IEnumerable<(string Name, string Kind, string Spec)> Containers()
    {
        foreach (var f in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var a = Addr(f);
            var natKey = $"{a} . inet_proto . inet_service . {a} . inet_service";
            foreach (var exact in ExactFirst)
            {
                var flags = exact ? string.Empty : " flags interval;";
                yield return (Of("dnat", f, exact), "map", $"type {a} . inet_proto . inet_service : {a} . inet_service;{flags}");
                yield return (Of("snat", f, exact), "map", $"type {natKey} : {a};{flags}");
                yield return (Of("masq", f, exact), "set", $"type {natKey};{flags}");
                yield return (Of("accept", f, exact), "set", $"type {natKey};{flags} counter;");
            }
        }

        yield return (Notes, "set", "type ifname;");
    }

    /// <summary>
    /// The fixed dispatch rules: chain, comment and rule body (without the comment). Each container has its rule, the
    /// exact twin's before the interval twin's: a lookup that misses ends its rule as not matching, so a packet goes on
    /// to the next rule.
    /// </summary>
    public static IEnumerable<(string Chain, string Tag, string Body)> DispatchRules()
    {
        foreach (var f in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var ip = Ip(f);
            foreach (var exact in ExactFirst)
            {
                yield return (Prerouting, DispatchTagPrefix + Of("dnat", f, exact),
                    $"meta l4proto {{ tcp, udp }} dnat {ip} to {ip} daddr . meta l4proto . th dport map @{Of("dnat", f, exact)}");
            }
        }

        foreach (var f in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var ip = Ip(f);
            var key = $"{ip} daddr . meta l4proto . th dport . ct original {ip} daddr . ct original proto-dst";
            foreach (var exact in ExactFirst)
            {
                yield return (Postrouting, DispatchTagPrefix + Of("snat", f, exact),
                    $"meta l4proto {{ tcp, udp }} ct status dnat snat {ip} to {key} map @{Of("snat", f, exact)}");
                yield return (Postrouting, DispatchTagPrefix + Of("masq", f, exact),
                    $"meta l4proto {{ tcp, udp }} ct status dnat {key} @{Of("masq", f, exact)} masquerade");
            }
        }

        // meta l4proto gives nft the context to type "ct original proto-dst"; ICMP errors related to a forwarded
        // connection are not counted here (an accept in this table decides nothing for other tables anyway).
        foreach (var f in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var ip = Ip(f);
            foreach (var exact in ExactFirst)
            {
                yield return (Forward, DispatchTagPrefix + Of("accept", f, exact),
                    $"meta l4proto {{ tcp, udp }} ct status dnat ct original {ip} daddr . ct original protocol . ct original proto-dst . ct reply {ip} saddr . ct reply proto-src @{Of("accept", f, exact)} accept");
            }
        }
    }

    /// <summary>
    /// The lines that create the table, its chains and containers when missing and leave them as they are
    /// otherwise (<c>add</c> of an existing object with the same declaration changes nothing).
    /// </summary>
    public static IEnumerable<string> Skeleton()
    {
        yield return $"add table {Table}";
        foreach (var (name, spec) in Chains)
        {
            yield return $"add chain {Table} {name} {{ {spec} }}";
        }

        foreach (var (name, kind, spec) in Containers())
        {
            yield return $"add {kind} {Table} {name} {{ {spec} }}";
        }
    }

    /// <summary>An <c>add rule</c> line for a fixed dispatch rule.</summary>
    public static string DispatchLine((string Chain, string Tag, string Body) r) =>
        $"add rule {Table} {r.Chain} {r.Body} comment \"{r.Tag}\"";
}
