using System.Text.Json;

namespace PSNetfilter.Core.NftJson;

/// <summary>A named set or map (<c>@name</c> in a rule): its elements, as JSON.</summary>
public sealed record NftSet(string Family, string Table, string Name, IReadOnlyList<JsonElement> Elements)
{
    public bool IsMap { get; init; }
}
