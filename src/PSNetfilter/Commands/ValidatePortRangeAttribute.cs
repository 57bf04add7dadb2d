using System.Management.Automation;

namespace PSNetfilter.Commands;

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
