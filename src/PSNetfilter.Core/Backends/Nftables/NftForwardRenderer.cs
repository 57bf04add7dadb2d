using System.Buffers;
using System.Globalization;
using System.Net;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// The elements and rules of one forward (see <see cref="NftTableLayout"/> for which forward gets which). Every token
/// comes from a validated definition; the comments are checked against a closed alphabet, so nothing can leave
/// its quotes.
/// </summary>
public static class NftForwardRenderer
{
    /// <summary>A forward whose DNAT fits the dnat map; the others get DNAT rules.</summary>
    public static bool IsMapForward(PortForwardDefinition d) =>
        d.ExternalAddress is not null && d.SourceAddresses.Count == 0 && d.InInterface is null && !d.IncludeLocal;

    /// <summary>The DNAT comment: <c>psnf:v1:NAME:dnat:MODE[:FLAGS]</c>.</summary>
    public static string DnatTag(PortForwardDefinition d) =>
        ForwardTag.Tag(d.Name, "dnat") + ":" + ForwardTag.ModeCode(d.SnatMode) + (ForwardTag.Flags(d) is { Length: > 0 } f ? ":" + f : string.Empty);

    public static IReadOnlyList<NftPart> Render(PortForwardDefinition d)
    {
        var parts = new List<NftPart>(6);
        var proto = ProtocolName.Of(d.Protocol);
        var extPorts = ForwardTag.PortSpec(d.ExternalPort, d.ExternalPortEnd, '-');
        var intPorts = ForwardTag.PortSpec(d.InternalPort, d.InternalPortEnd, '-');
        var origDst = d.ExternalAddress?.ToString() ?? AnyNetwork(d.Family);
        var @int = d.InternalAddress.ToString();

        if (IsMapForward(d))
        {
            var tag = DnatTag(d);
            if (d.IsRange && d.InternalPortEnd != d.InternalPort)
            {
                var map = NftTableLayout.Of("dnat", d.Family, exact: true);
                for (var i = 0; i <= d.ExternalPortEnd - d.ExternalPort; i++)
                {
                    parts.Add(Element(map, "dnat", $"{d.ExternalAddress} . {proto} . {Port(d.ExternalPort + i)}", tag, $"{@int} . {Port(d.InternalPort + i)}"));
                }
            }
            else
            {
                parts.Add(Element(NftTableLayout.Of("dnat", d.Family, exact: !d.IsRange), "dnat", $"{d.ExternalAddress} . {proto} . {extPorts}", tag, $"{@int} . {Port(d.InternalPort)}"));
            }
        }
        else
        {
            for (var i = 0; i < Math.Max(1, d.SourceAddresses.Count); i++)
            {
                var source = d.SourceAddresses.Count > 0 ? d.SourceAddresses[i] : (IPNetwork?)null;
                parts.Add(Rule(NftTableLayout.Prerouting, "dnat", DnatRule(d, proto, extPorts, source, inInterface: true), DnatTag(d)));
            }

            if (d.IncludeLocal)
            {
                parts.Add(Rule(NftTableLayout.Output, "local", DnatRule(d, proto, extPorts, null, inInterface: false), ForwardTag.Tag(d.Name, "local")));
            }
        }

        var natKey = $"{@int} . {proto} . {intPorts} . {origDst} . {extPorts}";

        // Host addresses and single ports only: the exact (hash) twin; a range or the any-address network: the interval one.
        var exact = !d.IsRange && d.ExternalAddress is not null;
        switch (d.SnatMode)
        {
            case SnatMode.Snat:
                parts.Add(Element(NftTableLayout.Of("snat", d.Family, exact), "snat", natKey, ForwardTag.Tag(d.Name, "snat"), d.SnatAddress!.ToString()));
                break;
            case SnatMode.Masquerade:
                parts.Add(Element(NftTableLayout.Of("masq", d.Family, exact), "masq", natKey, ForwardTag.Tag(d.Name, "masq"), null));
                break;
        }

        if (d.HairpinNetwork is { } hairpin)
        {
            var ip = NftTableLayout.Ip(d.Family);
            var dst = d.ExternalAddress is null ? string.Empty : $" ct original {ip} daddr {d.ExternalAddress}";
            var body = $"{ip} saddr {ForwardTag.NetworkSpec(hairpin)} {ip} daddr {@int} {proto} dport {intPorts} ct status dnat{dst} ct original proto-dst {extPorts} masquerade";
            parts.Add(Rule(NftTableLayout.Postrouting, "hairpin", body, ForwardTag.Tag(d.Name, "hairpin")));
        }

        parts.Add(Element(NftTableLayout.Of("accept", d.Family, exact), "fwd", $"{origDst} . {proto} . {extPorts} . {@int} . {intPorts}", ForwardTag.Tag(d.Name, "fwd"), null));

        foreach (var (key, comment) in NftNotes.Render(d.Name, d.Description))
        {
            parts.Add(Element(NftTableLayout.Notes, comment[(ForwardTag.TagPrefix.Length + d.Name.Length + 1)..comment.LastIndexOf(':')], key, comment, null));
        }

        return parts;
    }

    /// <summary>"0.0.0.0/0" or "::/0": the original destination of a forward on any local address.</summary>
    public static string AnyNetwork(IpFamily family) => family == IpFamily.IPv6 ? "::/0" : "0.0.0.0/0";

    private static string DnatRule(PortForwardDefinition d, string proto, string extPorts, IPNetwork? source, bool inInterface)
    {
        var ip = NftTableLayout.Ip(d.Family);
        var w = new List<string> { "meta nfproto " + (d.Family == IpFamily.IPv6 ? "ipv6" : "ipv4") };
        if (inInterface && d.InInterface is { } iif)
        {
            w.Add($"iifname \"{(iif.EndsWith('+') ? iif[..^1] + "*" : iif)}\"");
        }

        if (source is { } s)
        {
            w.Add($"{ip} saddr {ForwardTag.NetworkSpec(s)}");
        }

        w.Add(d.ExternalAddress is null ? "fib daddr type local" : $"{ip} daddr {d.ExternalAddress}");
        w.Add($"{proto} dport {extPorts}");
        var target = d.Family == IpFamily.IPv6 ? $"[{d.InternalAddress}]" : d.InternalAddress.ToString();
        if (d.IsRange && d.InternalPortEnd != d.InternalPort)
        {
            var pairs = Enumerable.Range(0, d.ExternalPortEnd - d.ExternalPort + 1).Select(i => $"{Port(d.ExternalPort + i)} : {Port(d.InternalPort + i)}");
            w.Add($"dnat {ip} to {target} : {proto} dport map {{ {string.Join(", ", pairs)} }}");
        }
        else
        {
            w.Add($"dnat {ip} to {target}:{Port(d.InternalPort)}");
        }

        return string.Join(' ', w);
    }

    private static NftPart Element(string set, string role, string key, string comment, string? data)
    {
        var element = $"{key} comment \"{Safe(comment)}\"{(data is null ? string.Empty : " : " + data)}";
        return new NftPart(false, set, role, $"add element {NftTableLayout.Table} {set} {{ {element} }}", key, element);
    }

    private static NftPart Rule(string chain, string role, string body, string comment) =>
        new(true, chain, role, $"add rule {NftTableLayout.Table} {chain} {body} comment \"{Safe(comment)}\"", string.Empty);

    private static string Port(int p) => p.ToString(CultureInfo.InvariantCulture);

    /// <summary>A comment within nft's limit and a closed alphabet (a guard: validated definitions never fail it).</summary>
    private static string Safe(string comment)
    {
        if (comment.Length > NftTableLayout.MaxCommentLength || comment.AsSpan().ContainsAnyExcept(CommentChars))
        {
            throw new InvalidOperationException($"Refusing to render unsafe comment '{PortForwardDefinition.Printable(comment)}'.");
        }

        return comment;
    }

    private static readonly SearchValues<char> CommentChars =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-@");
}
