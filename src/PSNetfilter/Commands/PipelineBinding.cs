using System.Management.Automation;

namespace PSNetfilter.Commands;

/// <summary>
/// Each piped item bound on its own: PowerShell keeps a parameter's last value when a later item's property
/// cannot be converted, so New-PortForward converts each piped property as PowerShell would and compares it
/// with what was bound. A mismatch is InvalidPipelineValue for that item (naming the forward, the property
/// and the value), instead of a forward created with the previous item's value or a default.
/// </summary>
internal static class PipelineBinding
{
    /// <summary>The parameters that bind from a piped object's properties, with their transformations: found once, by reflection.</summary>
    private static readonly Dictionary<string, PipelineParameter> PipelineParameters = typeof(NewPortForwardCommand).GetProperties()
        .Where(p => p.GetCustomAttributes(typeof(ParameterAttribute), false).OfType<ParameterAttribute>().Any(a => a.ValueFromPipelineByPropertyName))
        .ToDictionary(
            p => p.Name,
            p => new PipelineParameter(p, p.GetCustomAttributes(typeof(ArgumentTransformationAttribute), false).Cast<ArgumentTransformationAttribute>().ToArray()),
            StringComparer.OrdinalIgnoreCase);

    /// <param name="engine">The session's EngineIntrinsics for the transformations, looked up on first use and kept by the caller for the next item.</param>
    /// <exception cref="PortForwardValidationException">InvalidPipelineValue.</exception>
    public static void Check(PSCmdlet command, PSObject? inputObject, IReadOnlySet<string> commandLine, ref EngineIntrinsics? engine)
    {
        if (inputObject is null || inputObject.BaseObject is PortForward)
        {
            return;
        }

        foreach (var property in inputObject.Properties)
        {
            if (!PipelineParameters.TryGetValue(property.Name, out var bound) || commandLine.Contains(bound.Property.Name))
            {
                continue;
            }

            object? raw;
            try
            {
                raw = property.Value;
            }
            catch (GetValueException)
            {
                continue; // a property that throws on read is not bound by PowerShell either
            }

            if (raw is null)
            {
                continue; // $null: not given
            }

            engine ??= (EngineIntrinsics)command.GetVariableValue("ExecutionContext");
            if (BindsAs(bound, raw, engine, out var expected) && SameValue(expected, bound.Property.GetValue(command)))
            {
                continue;
            }

            var parameter = bound.Property;
            var name = inputObject.Properties["Name"]?.Value?.ToString();
            var type = Nullable.GetUnderlyingType(parameter.PropertyType) ?? parameter.PropertyType;
            var valid = type.IsEnum ? $" (valid: {string.Join(", ", Enum.GetNames(type))})" : string.Empty;
            throw new PortForwardValidationException(
                "InvalidPipelineValue",
                $"Port forward '{PortForwardDefinition.Printable(string.IsNullOrEmpty(name) ? "(no name)" : name)}': the piped {parameter.Name} '{PortForwardDefinition.Printable(raw.ToString() ?? string.Empty)}' is not a valid value for -{parameter.Name}{valid}. The item is skipped rather than created with a default.",
                raw);
        }
    }

    /// <summary>What the binder makes of <paramref name="raw"/> for <paramref name="parameter"/>; false when it cannot convert it.</summary>
    private static bool BindsAs(PipelineParameter parameter, object raw, EngineIntrinsics engine, out object? value)
    {
        value = raw;
        try
        {
            foreach (var transformation in parameter.Transformations)
            {
                value = transformation.Transform(engine, value);
            }

            if (value is null)
            {
                return true;
            }

            value = LanguagePrimitives.ConvertTo(value, parameter.Property.PropertyType, System.Globalization.CultureInfo.InvariantCulture);
            return true;
        }
        catch (Exception ex) when (ex is ArgumentTransformationMetadataException or PSInvalidCastException or InvalidCastException)
        {
            return false;
        }
    }

    private static bool SameValue(object? expected, object? actual) => (expected, actual) switch
    {
        (null, null) => true,
        (SwitchParameter a, SwitchParameter b) => a.IsPresent == b.IsPresent,
        (null, SwitchParameter b) => !b.IsPresent,
        (string a, string b) => string.Equals(a, b, StringComparison.Ordinal),
        (System.Collections.IEnumerable a, System.Collections.IEnumerable b) => a.Cast<object?>().SequenceEqual(b.Cast<object?>()),
        _ => Equals(expected, actual),
    };

    private sealed record PipelineParameter(System.Reflection.PropertyInfo Property, ArgumentTransformationAttribute[] Transformations);
}
