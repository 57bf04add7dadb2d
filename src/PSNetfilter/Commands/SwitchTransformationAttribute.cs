using System.Management.Automation;

namespace PSNetfilter.Commands;

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
