using System.Text.Json;

namespace PSNetfilter.Core.NftJson;

/// <summary>
/// Reads the output of <c>nft -j list ruleset</c> (libnftables' JSON schema 1, as printed by nft 1.0.x and 1.1.x)
/// into an <see cref="NftRuleset"/>. Objects it does not know (flowtables, counters, quotas, ...) are skipped;
/// the statements of each rule are kept as JSON for <see cref="NftRuleRenderer"/> and the path evaluator.
/// </summary>
public static class NftJsonParser
{
    public static NftRuleset Parse(string json)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return NftRuleset.Empty;
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException ex)
        {
            throw new NftParseException($"nft -j printed text that is not JSON: {ex.Message}", ex);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("nftables", out var items)
                || items.ValueKind != JsonValueKind.Array)
            {
                throw new NftParseException("nft -j output has no top-level \"nftables\" array.", null);
            }

            var version = string.Empty;
            var tables = new List<NftTable>();
            var chains = new List<NftChain>();
            var rules = new List<NftRule>();
            var sets = new List<NftSet>();
            var index = 0;
            foreach (var item in items.EnumerateArray())
            {
                index++;
                if (item.ValueKind != JsonValueKind.Object)
                {
                    throw new NftParseException($"nft -j output item {index} is not an object.", null);
                }

                foreach (var prop in item.EnumerateObject())
                {
                    try
                    {
                        switch (prop.Name)
                        {
                            case "metainfo":
                                version = Str(prop.Value, "version") ?? string.Empty;
                                break;
                            case "table":
                                tables.Add(new NftTable(Req(prop.Value, "family"), Req(prop.Value, "name"), Num(prop.Value, "handle") ?? 0));
                                break;
                            case "chain":
                                chains.Add(new NftChain(Req(prop.Value, "family"), Req(prop.Value, "table"), Req(prop.Value, "name"), Num(prop.Value, "handle") ?? 0)
                                {
                                    Type = Str(prop.Value, "type"),
                                    Hook = Str(prop.Value, "hook"),
                                    Priority = (int?)Num(prop.Value, "prio"),
                                    Policy = Str(prop.Value, "policy"),
                                });
                                break;
                            case "rule":
                                rules.Add(ReadRule(prop.Value));
                                break;
                            case "set":
                            case "map":
                                sets.Add(new NftSet(Req(prop.Value, "family"), Req(prop.Value, "table"), Req(prop.Value, "name"),
                                    prop.Value.TryGetProperty("elem", out var elem) && elem.ValueKind == JsonValueKind.Array
                                        ? elem.EnumerateArray().Select(e => e.Clone()).ToList()
                                        : Array.Empty<JsonElement>())
                                {
                                    IsMap = prop.Name == "map",
                                });
                                break;
                        }
                    }
                    catch (InvalidOperationException ex)
                    {
                        throw new NftParseException($"nft -j output item {index} ({prop.Name}): {ex.Message}", ex);
                    }
                }
            }

            return new NftRuleset(version, tables, chains, rules, sets);
        }
    }

    private static NftRule ReadRule(JsonElement r)
    {
        var expr = r.TryGetProperty("expr", out var e) && e.ValueKind == JsonValueKind.Array
            ? e.EnumerateArray().Select(x => x.Clone()).ToList()
            : new List<JsonElement>();
        return new NftRule(Req(r, "family"), Req(r, "table"), Req(r, "chain"), Num(r, "handle") ?? 0, expr)
        {
            Comment = Str(r, "comment"),
        };
    }

    private static string Req(JsonElement e, string name) =>
        Str(e, name) ?? throw new InvalidOperationException($"the \"{name}\" field is missing");

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long? Num(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;
}
