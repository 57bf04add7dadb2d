using System.Management.Automation;

namespace PSNetfilter.Commands;

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
