using System.Text.Json.Serialization;

namespace PSNetfilter.Core.Engine;

[JsonSourceGenerationOptions(WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IntentRecord.Document))]
internal sealed partial class IntentJson : JsonSerializerContext
{
}
