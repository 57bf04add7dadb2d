using System.Net;
using System.Text.Json;
using PSNetfilter.Core.NftJson;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// Reads <c>nft -j list table inet psnetfilter</c> back into forwards: the definition from the DNAT part (a dnat map
/// element or the DNAT rules), its comment (SNAT mode and flags), the snat/masq element, the output and hairpin rules
/// and the notes; the counter from the accept element. A part the comment's flags call for and that is not there is
/// named in <see cref="NftTableForward.Missing"/>. Only this table is read; other tables in the input are ignored.
/// An element is taken by its comment, not by the set that holds it: the exact twin (<c>dnat4x</c>) and the interval
/// twin (<c>dnat4</c>) give the same part, and a table written before the twins existed is read as it is.
/// </summary>
public static class NftTableReader
{
    public static NftTableState Read(string json) => Read(NftJsonParser.Parse(json));

    public static NftTableState Read(NftRuleset ruleset)
    {
        if (!ruleset.Tables.Any(t => t.Family == NftTableLayout.Family && t.Name == NftTableLayout.TableName))
        {
            return NftTableState.Empty;
        }

        var byName = new Dictionary<string, Collected>(StringComparer.Ordinal);
        var dispatch = new HashSet<string>(StringComparer.Ordinal);
        Collected For(string name) => byName.TryGetValue(name, out var c) ? c : byName[name] = new Collected();

        foreach (var set in ruleset.Sets.Where(Ours))
        {
            foreach (var raw in set.Elements)
            {
                var (key, data, comment, packets, bytes) = NftJsonValue.Element(raw);
                if (Tag(comment) is not { } tag)
                {
                    continue;
                }

                var keyText = NftJsonValue.Text(key);
                var c = For(tag.Name);
                c.Parts.Add(new NftPresentPart(false, set.Name, tag.Role, set.Name == NftTableLayout.Notes ? "\"" + keyText + "\"" : keyText, 0));
                c.Elements.Add((set.Name, tag, key, data));
                c.Packets += packets;
                c.Bytes += bytes;
            }
        }

        foreach (var rule in ruleset.Rules.Where(r => r.Family == NftTableLayout.Family && r.Table == NftTableLayout.TableName))
        {
            if (rule.Comment is { } dc && dc.StartsWith(NftTableLayout.DispatchTagPrefix, StringComparison.Ordinal))
            {
                dispatch.Add(dc);
                continue;
            }

            if (Tag(rule.Comment) is not { } tag)
            {
                continue;
            }

            var c = For(tag.Name);
            c.Parts.Add(new NftPresentPart(true, rule.Chain, tag.Role, string.Empty, rule.Handle));
            c.Rules.Add((tag, NftRuleFields.Read(rule.Expressions)));
        }

        var forwards = byName.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => Build(p.Key, p.Value)).ToList();
        return new NftTableState(true, forwards, dispatch);
    }

    private static bool Ours(NftSet s) => s.Family == NftTableLayout.Family && s.Table == NftTableLayout.TableName;

    /// <summary>"psnf:v1:NAME:ROLE[:more]" -> (NAME, ROLE, the fields after the role).</summary>
    private static (string Name, string Role, string[] More)? Tag(string? comment)
    {
        if (comment is null || !comment.StartsWith(ForwardTag.TagPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var fields = comment[ForwardTag.TagPrefix.Length..].Split(':');
        if (fields.Length < 2 || fields[0].Length == 0 || fields[0].StartsWith('@'))
        {
            return null;
        }

        return (fields[0], fields[1], fields[2..]);
    }

    private static NftTableForward Build(string name, Collected c)
    {
        var missing = new List<string>();
        var dnatTag = c.Elements.Where(e => e.Tag.Role == "dnat").Select(e => e.Tag).Concat(c.Rules.Where(r => r.Tag.Role == "dnat").Select(r => r.Tag)).FirstOrDefault();
        var mode = dnatTag.More is { Length: > 0 } rest ? ForwardTag.ParseModeCode(rest[0]) : null;
        var flags = ForwardTag.ParseAllFlags(dnatTag.More is { Length: > 1 } r2 ? r2[1] : string.Empty);
        if (dnatTag.Name is null || mode is null || flags is null)
        {
            missing.Add("dnat");
            AddMissingCommon(c, missing, null);
            return new NftTableForward(name, null, c.Packets, c.Bytes, missing, c.Parts);
        }

        var f = flags.Value;
        var description = NotesText(c, f.Description, missing);
        PortForwardDefinition? definition = null;
        try
        {
            definition = c.Elements.Any(e => e.Tag.Role == "dnat") ? FromMap(name, c, mode.Value, description, missing) : FromRules(name, c, mode.Value, description, f, missing);
        }
        catch (Exception ex) when (ex is PortForwardValidationException or FormatException or InvalidOperationException or KeyNotFoundException or ArgumentException)
        {
            missing.Add("dnat");
        }

        AddMissingCommon(c, missing, mode);
        return new NftTableForward(name, definition, c.Packets, c.Bytes, missing, c.Parts);
    }

    private static void AddMissingCommon(Collected c, List<string> missing, SnatMode? mode)
    {
        if (mode == SnatMode.Snat && !c.Has("snat"))
        {
            missing.Add("snat");
        }

        if (mode == SnatMode.Masquerade && !c.Has("masq"))
        {
            missing.Add("masq");
        }

        if (!c.Has("fwd"))
        {
            missing.Add("fwd");
        }
    }

    private static PortForwardDefinition FromMap(string name, Collected c, SnatMode mode, string? description, List<string> missing)
    {
        var dnat = c.Elements.Where(e => e.Tag.Role == "dnat").ToList();
        var keys = dnat.Select(e => NftJsonValue.Fields(e.Key)).ToList();
        var data = dnat.Select(e => NftJsonValue.Fields(e.Data ?? throw new FormatException("a dnat element without data"))).ToList();
        var external = IPAddress.Parse(keys[0][0].GetString()!);
        var protocol = Proto(keys[0][1].GetString());
        var extPorts = keys.Select(k => NftJsonValue.Ports(k[2])).ToList();
        var intPorts = data.Select(d => NftJsonValue.Ports(d[1])).ToList();
        var intAddress = IPAddress.Parse(data[0][0].GetString()!);
        var extFirst = extPorts.Min(p => p.First);
        var extLast = extPorts.Max(p => p.Last);
        var intFirst = intPorts.Min(p => p.First);
        var intLast = intPorts.Max(p => p.Last);
        var extras = new ForwardExtras(ExternalPortEnd: extLast, InternalPortEnd: intLast);
        return PortForwardDefinition.CreateFromKernel(name, protocol, external, extFirst, intAddress, intFirst, mode, SnatAddress(c, mode), description, extras);
    }

    private static PortForwardDefinition FromRules(string name, Collected c, SnatMode mode, string? description, (bool Local, bool Interface, bool Description, bool Hairpin, int Sources) f, List<string> missing)
    {
        var dnat = c.Rules.Where(r => r.Tag.Role == "dnat").Select(r => r.Fields).ToList();
        var first = dnat[0];
        var args = first.NatArgs ?? throw new FormatException("a DNAT rule without a target");
        var ip = args.GetProperty("family").GetString()!;
        var intAddress = IPAddress.Parse(args.GetProperty("addr").GetString()!);
        var protocol = first.Match("tcp dport") is not null ? Protocol.Tcp : Protocol.Udp;
        var (extFirst, extLast) = NftJsonValue.Ports(first.Match(protocol == Protocol.Tcp ? "tcp dport" : "udp dport") ?? throw new FormatException("no dport"));
        var port = args.GetProperty("port");
        var (intFirst, intLast) = port.ValueKind == JsonValueKind.Object && port.TryGetProperty("map", out var map)
            ? (map.GetProperty("data").GetProperty("set").EnumerateArray().Min(p => p[1].GetInt32()), map.GetProperty("data").GetProperty("set").EnumerateArray().Max(p => p[1].GetInt32()))
            : NftJsonValue.Ports(port);
        var external = first.Match(ip + " daddr") is { } daddr ? IPAddress.Parse(daddr.GetString()!) : null;
        var iif = first.Match("meta iifname")?.GetString();
        iif = iif is not null && iif.EndsWith('*') ? iif[..^1] + "+" : iif;
        var sources = dnat.Select(d => d.Match(ip + " saddr")).Where(s => s is not null).Select(s => NftJsonValue.Network(s!.Value)).ToList();
        if (sources.Count != f.Sources || dnat.Count != Math.Max(1, f.Sources))
        {
            missing.Add("dnat");
        }

        if (f.Local && !c.Has("local"))
        {
            missing.Add("local");
        }

        IPNetwork? hairpin = null;
        if (c.Rules.FirstOrDefault(r => r.Tag.Role == "hairpin").Fields is { } hp && hp.Match(ip + " saddr") is { } hs)
        {
            hairpin = NftJsonValue.Network(hs);
        }
        else if (f.Hairpin)
        {
            missing.Add("hairpin");
        }

        var extras = new ForwardExtras(extLast, intLast, sources, iif, f.Local, hairpin);
        return PortForwardDefinition.CreateFromKernel(name, protocol, external, extFirst, intAddress, intFirst, mode, SnatAddress(c, mode), description, extras);
    }

    private static IPAddress? SnatAddress(Collected c, SnatMode mode) =>
        mode == SnatMode.Snat && c.Elements.FirstOrDefault(e => e.Tag.Role == "snat").Data is { } d ? IPAddress.Parse(d.GetString()!) : null;

    private static string? NotesText(Collected c, bool expected, List<string> missing)
    {
        var chunks = c.Elements.Where(e => e.Set == NftTableLayout.Notes)
            .Select(e => NftNotes.ParseRole(e.Tag.Role + ":" + string.Join(':', e.Tag.More)))
            .Where(n => n is not null).Select(n => n!.Value).OrderBy(n => n.Index).ToList();
        var complete = chunks.Count > 0 && chunks.Count == chunks[0].Count && chunks.Select(n => n.Index).SequenceEqual(Enumerable.Range(0, chunks.Count));
        if (expected && !complete)
        {
            missing.Add("description");
            return null;
        }

        return complete ? ForwardTag.DecodeDescription(string.Concat(chunks.Select(n => n.Chunk))) : null;
    }

    private static Protocol Proto(string? p) => p switch
    {
        "tcp" => Protocol.Tcp,
        "udp" => Protocol.Udp,
        _ => throw new FormatException("unknown protocol " + p),
    };

    private sealed class Collected
    {
        public List<NftPresentPart> Parts { get; } = new();

        public List<(string Set, (string Name, string Role, string[] More) Tag, JsonElement Key, JsonElement? Data)> Elements { get; } = new();

        public List<((string Name, string Role, string[] More) Tag, NftRuleFields Fields)> Rules { get; } = new();

        public long Packets { get; set; }

        public long Bytes { get; set; }

        public bool Has(string role) => Parts.Any(p => p.Role == role);
    }
}
