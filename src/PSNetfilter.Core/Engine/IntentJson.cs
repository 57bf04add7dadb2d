using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Engine;

[JsonSourceGenerationOptions(WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(IntentRecord.Document))]
internal sealed partial class IntentJson : JsonSerializerContext
{
}
