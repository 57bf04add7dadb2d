using System.Management.Automation;
using System.Net;

namespace PSNetfilter.Commands;

/// <summary>
/// Lets address parameters take strings, IPAddress objects, and the objects ConvertFrom-Json makes of an
/// IPAddress (which carry IPAddressToString), so JSON written by ConvertTo-Json feeds back into
/// New-PortForward. The value stays text; the core parses it strictly.
/// </summary>
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
                var text = wrapped.Properties["IPAddressToString"]?.Value;
                return text?.ToString() ?? inputData.ToString();
            default:
                return value.ToString();
        }
    }
}
