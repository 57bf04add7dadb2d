using System.Text.Json.Serialization;

namespace PSNetfilter.Core.Engine;

[JsonSourceGenerationOptions(WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IntentRecord.Document))]
internal sealed partial class IntentJson : JsonSerializerContext
{
}

/// <summary>One definition on one line (boot-set headers).</summary>
[JsonSourceGenerationOptions(WriteIndented = false, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IntentRecord.Entry))]
internal sealed partial class DefinitionLineJson : JsonSerializerContext
{
}
