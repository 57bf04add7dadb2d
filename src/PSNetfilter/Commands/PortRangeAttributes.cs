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

/// <summary>
/// Checks that every port of a range is 1-65535 and the range is ordered, and that a single port number is
/// 1-65535. Unlike ValidateRange it lets null through: a blank CSV cell (made null by BlankToNull) is "not given".
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ValidatePortRangeAttribute : ValidateArgumentsAttribute
{
    protected override void Validate(object arguments, EngineIntrinsics engineIntrinsics)
    {
        if (arguments is int port && port is < 1 or > 65535)
        {
            throw new ValidationMetadataException($"{port} is not a port: use 1-65535.");
        }

        if (arguments is PortRange r)
        {
            try
            {
                PortRange.Create(r.First, r.Last);
            }
            catch (PortForwardValidationException ex)
            {
                throw new ValidationMetadataException(ex.Message, ex);
            }
        }
    }
}

/// <summary>A blank string (an empty CSV cell) binds as null instead of failing conversion to a number.</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class BlankToNullAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        return value is string s && string.IsNullOrWhiteSpace(s) ? null : inputData;
    }
}

/// <summary>Lets a switch bind from the text of a CSV cell: True/False, 1/0, blank (false).</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SwitchTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject pso ? pso.BaseObject : inputData;
        if (value is not string s)
        {
            return inputData;
        }

        return s.Trim().ToLowerInvariant() switch
        {
            "" or "false" or "0" => new SwitchParameter(false),
            "true" or "1" => new SwitchParameter(true),
            _ => throw new ArgumentTransformationMetadataException($"'{s}' is not True or False."), // reported as InvalidPipelineValue when piped
        };
    }
}
