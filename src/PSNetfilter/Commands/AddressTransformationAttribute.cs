using System.Management.Automation;
using System.Net;

namespace PSNetfilter.Commands;

/// <summary>
/// Lets address parameters take strings, IPAddress objects, and the objects ConvertFrom-Json makes of an
/// IPAddress (which carry IPAddressToString), so JSON written by ConvertTo-Json feeds back into
/// New-PortForward. The value stays text; the core parses it strictly.
/// </summary>
/// <remarks>
/// ConvertTo-Json keeps IPAddressToString only at the top level; nested, an IPv4 address keeps its numeric
/// Address (network byte order), an IPv6 address loses its value entirely: such an object is refused with
/// advice to serialise with -Depth 1 (which writes addresses as text).
/// </remarks>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class AddressTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        if (value is System.Collections.IList list)
        {
            var items = new string?[list.Count];
            for (var i = 0; i < list.Count; i++)
            {
                items[i] = Transform(engineIntrinsics, list[i]) as string;
            }

            return items;
        }

        return TransformOne(inputData, value);
    }

    private static string FromJsonObject(PSObject o)
    {
        if (o.Properties["IPAddressToString"]?.Value is { } text)
        {
            return text.ToString()!;
        }

        var family = o.Properties["AddressFamily"]?.Value?.ToString();
        var number = o.Properties["Address"]?.Value;
        if ((family == "2" || family == "InterNetwork") && number is not null
            && long.TryParse(number.ToString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n)
            && n is >= 0 and <= uint.MaxValue)
        {
            return new IPAddress(n).ToString();
        }

        throw new ArgumentTransformationMetadataException(
            "This address came from JSON that lost its value (ConvertTo-Json drops the text of nested IPv6 addresses). Serialise forwards with 'ConvertTo-Json -Depth 1', which writes addresses as text.");
    }

    private static object? TransformOne(object? inputData, object? value)
    {
        switch (value)
        {
            case null:
                return null;
            case IPAddress ip:
                return ip.ToString();
            case string s:
                return s;
            case PSCustomObject when inputData is PSObject wrapped:
                return FromJsonObject(wrapped);
            default:
                return value.ToString();
        }
    }
}
