using System.Text.Json;

namespace PSNetfilter.Core.NftJson;

/// <summary>One rule: its statements (the <c>expr</c> array) are kept as JSON for the evaluator and the renderer.</summary>
public sealed record NftRule(string Family, string Table, string Chain, long Handle, IReadOnlyList<JsonElement> Expressions)
{
    public string? Comment { get; init; }
}
