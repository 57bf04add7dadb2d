using System.Management.Automation;

namespace PSNetfilter.Commands;

/// <summary>Lets a port parameter take 8080, "8080" or "8000-8010".</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class PortRangeTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        switch (value)
        {
            case null:
                return null;
            case string blank when string.IsNullOrWhiteSpace(blank):
                return null; // a blank CSV cell: not given
            case PortRange r:
                return r;
            case int i:
                return new PortRange(i, i);
            case long or short or byte or uint or ushort:
                var n = Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
                return n is >= int.MinValue and <= int.MaxValue ? new PortRange((int)n, (int)n) : throw new ArgumentTransformationMetadataException($"{n} is not a port.");
            default:
                try
                {
                    var text = value.ToString();
                    var sep = text?.IndexOfAny(new[] { '-', ':' }) ?? -1;
                    if (sep <= 0)
                    {
                        if (int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var single))
                        {
                            return new PortRange(single, single);
                        }
                    }

                    return PortRange.Parse(text);
                }
                catch (PortForwardValidationException ex)
                {
                    throw new ArgumentTransformationMetadataException(ex.Message, ex);
                }
        }
    }
}
