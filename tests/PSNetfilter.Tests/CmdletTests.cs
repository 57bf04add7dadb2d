using System.Management.Automation;
using System.Reflection;
using PSNetfilter.Commands;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

/// <summary>Parameter metadata and the errors bad input gives before any process runs.</summary>
public class CmdletTests
{
    private const string NewId = "PSNetfilter.Commands.NewPortForwardCommand";
    private const string GetId = "PSNetfilter.Commands.GetPortForwardCommand";
    private const string RemoveId = "PSNetfilter.Commands.RemovePortForwardCommand";

    private static readonly string MissingNamespace = "psnfx-missing-" + Guid.NewGuid().ToString("N")[..8];

    private static Dictionary<string, ParameterAttribute[]> Parameters(Type t) =>
        t.GetProperties().Select(p => (p.Name, Attrs: p.GetCustomAttributes<ParameterAttribute>().ToArray())).Where(x => x.Attrs.Length > 0).ToDictionary(x => x.Name, x => x.Attrs);

    [Fact]
    public void New_binds_every_parameter_but_the_switches_by_property_name()
    {
        var ps = Parameters(typeof(NewPortForwardCommand));
        Assert.Equal(
            new[] { "AcceptInOtherTables", "Backend", "Description", "ExternalAddress", "ExternalPort", "ExternalPortEnd", "Force", "InInterface", "IncludeLocal", "InputObject", "InternalAddress", "InternalPort", "InternalPortEnd", "Masquerade", "Name", "NetworkNamespace", "NoSnat", "Protocol", "SnatAddress", "SnatMode", "SourceAddress" },
            ps.Keys.Order(StringComparer.Ordinal));
        Assert.True(ps["InputObject"].Single().ValueFromPipeline); // the piped object, checked for unconvertible properties
        foreach (var (name, attrs) in ps)
        {
            // Backend is not taken from a piped forward's Backend property: piping Get-PortForward moves nothing by itself.
            var expected = name is not ("Masquerade" or "NoSnat" or "Force" or "InputObject" or "AcceptInOtherTables" or "Backend");
            Assert.True(attrs.All(a => a.ValueFromPipelineByPropertyName == expected), $"{name}: ValueFromPipelineByPropertyName should be {expected}");
        }

        Assert.True(ps["ExternalPort"].Single().Mandatory);
        Assert.True(ps["InternalAddress"].Single().Mandatory);
        Assert.False(ps["Name"].Single().Mandatory);
        Assert.Equal(0, ps["Name"].Single().Position);
    }

    [Fact]
    public void Every_piped_parameter_of_New_has_a_PortForward_property_of_that_name()
    {
        // Get-PortForward | New-PortForward -NetworkNamespace other  must carry every field.
        var props = typeof(PortForward).GetProperties().Select(p => p.Name).ToHashSet();
        var piped = Parameters(typeof(NewPortForwardCommand)).Where(p => p.Value.Any(a => a.ValueFromPipelineByPropertyName)).Select(p => p.Key);
        Assert.All(piped, name => Assert.Contains(name, props));
    }

    [Fact]
    public void ShouldProcess_on_New_and_Remove_only()
    {
        Assert.True(typeof(NewPortForwardCommand).GetCustomAttribute<CmdletAttribute>()!.SupportsShouldProcess);
        Assert.True(typeof(RemovePortForwardCommand).GetCustomAttribute<CmdletAttribute>()!.SupportsShouldProcess);
        Assert.False(typeof(GetPortForwardCommand).GetCustomAttribute<CmdletAttribute>()!.SupportsShouldProcess);
        Assert.True(new CommandMetadata(typeof(NewPortForwardCommand)).SupportsShouldProcess);
        Assert.True(new CommandMetadata(typeof(RemovePortForwardCommand)).SupportsShouldProcess);
        Assert.Equal(("New", "PortForward"), (typeof(NewPortForwardCommand).GetCustomAttribute<CmdletAttribute>()!.VerbName, typeof(NewPortForwardCommand).GetCustomAttribute<CmdletAttribute>()!.NounName));
    }

    [Fact]
    public void Name_supports_wildcards_on_Get_and_Remove_but_not_New()
    {
        Assert.NotNull(typeof(GetPortForwardCommand).GetProperty("Name")!.GetCustomAttribute<SupportsWildcardsAttribute>());
        Assert.NotNull(typeof(RemovePortForwardCommand).GetProperty("Name")!.GetCustomAttribute<SupportsWildcardsAttribute>());
        Assert.Null(typeof(NewPortForwardCommand).GetProperty("Name")!.GetCustomAttribute<SupportsWildcardsAttribute>());
        Assert.Equal(typeof(string[]), typeof(GetPortForwardCommand).GetProperty("Name")!.PropertyType);
        Assert.Equal(typeof(string[]), typeof(RemovePortForwardCommand).GetProperty("Name")!.PropertyType);
    }

    [Fact]
    public void Ports_are_range_checked()
    {
        Assert.NotNull(typeof(NewPortForwardCommand).GetProperty("ExternalPort")!.GetCustomAttribute<ValidatePortRangeAttribute>());
        Assert.NotNull(typeof(NewPortForwardCommand).GetProperty("InternalPort")!.GetCustomAttribute<ValidatePortRangeAttribute>());
        Assert.NotNull(typeof(NewPortForwardCommand).GetProperty("ExternalPort")!.GetCustomAttribute<PortRangeTransformationAttribute>());
        // The ends of a range bind from blank CSV cells as null, which ValidateRange refuses: ValidatePortRange checks them.
        Assert.NotNull(typeof(NewPortForwardCommand).GetProperty("ExternalPortEnd")!.GetCustomAttribute<ValidatePortRangeAttribute>());
        Assert.NotNull(typeof(NewPortForwardCommand).GetProperty("InternalPortEnd")!.GetCustomAttribute<ValidatePortRangeAttribute>());
        foreach (var (type, prop) in new[] { (typeof(GetPortForwardCommand), "ExternalPort") })
        {
            var range = type.GetProperty(prop)!.GetCustomAttribute<ValidateRangeAttribute>();
            Assert.NotNull(range);
            Assert.Equal((1, 65535), ((int)range!.MinRange, (int)range.MaxRange));
        }
    }

    [Fact]
    public void Remove_takes_names_or_piped_forwards()
    {
        var ps = Parameters(typeof(RemovePortForwardCommand));
        Assert.Equal("Name", typeof(RemovePortForwardCommand).GetCustomAttribute<CmdletAttribute>()!.DefaultParameterSetName);
        var input = Assert.Single(ps["InputObject"]);
        Assert.True(input.ValueFromPipeline);
        Assert.True(input.Mandatory);
        Assert.Equal("InputObject", input.ParameterSetName);
        Assert.Equal(typeof(PortForward[]), typeof(RemovePortForwardCommand).GetProperty("InputObject")!.PropertyType);
        Assert.True(ps["Name"].Single().ValueFromPipelineByPropertyName);
    }

    [Fact]
    public void Session_exposes_the_three_cmdlets_with_their_metadata()
    {
        var r = PsRunner.Run("""
            $n = Get-Command New-PortForward
            $r = Get-Command Remove-PortForward
            $g = Get-Command Get-PortForward
            $n.Parameters['WhatIf'] -ne $null
            $r.Parameters['Confirm'] -ne $null
            $g.Parameters['WhatIf'] -eq $null
            $n.Parameters['Protocol'].ParameterType.FullName
            $n.OutputType[0].Type.FullName
            """);
        Assert.Empty(r.Errors);
        Assert.Equal(new object[] { true, true, true, "PSNetfilter.Protocol", "PSNetfilter.PortForward" }, r.Output.Select(o => o.BaseObject));
    }

    public static IEnumerable<object[]> NewFailures() => new[]
    {
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress abc", "InvalidAddress" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 10.1", "InvalidAddress" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -ExternalAddress 1.2.3.4/24", "InvalidAddress" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 'fe80::1%eth0'", "InvalidAddress" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 0.0.0.0 -Masquerade", "InvalidAddress" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 224.0.0.1", "InvalidAddress" },
        new object[] { "New-PortForward -Name 'a b' -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade", "InvalidName" },
        new object[] { "New-PortForward -Name 'a\"b' -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade", "InvalidName" },
        new object[] { "New-PortForward -Name ('x' * 65) -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade", "InvalidName" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -ExternalAddress 2001:db8::1 -Masquerade", "AddressFamilyMismatch" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 2001:db8::1", "AddressFamilyMismatch" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -NoSnat", "ConflictingSnatOptions" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -NoSnat -SnatAddress 198.51.100.1", "ConflictingSnatOptions" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -Description ('x' * 129)", "DescriptionTooLong" },
        new object[] { $"New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -NetworkNamespace {MissingNamespace}", "NetworkNamespaceNotFound" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -NetworkNamespace /var/run/netns/x", "InvalidNetworkNamespace" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -NetworkNamespace '..'", "InvalidNetworkNamespace" },
        new object[] { "New-PortForward -ExternalPort 8000-8010 -InternalPort 9000-9005 -InternalAddress 198.51.100.10 -Masquerade", "PortRangeMismatch" },
        new object[] { "New-PortForward -ExternalPort 8000-8010 -ExternalPortEnd 8020 -InternalAddress 198.51.100.10 -Masquerade", "PortRangeMismatch" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -SourceAddress 10.1/8", "InvalidSourceAddress" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -SourceAddress 2001:db8::/32", "AddressFamilyMismatch" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Masquerade -InInterface 'eth 0'", "InvalidInterface" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress 127.0.0.1 -NoSnat", "LoopbackNeedsInInterface" },
        new object[] { "New-PortForward -ExternalPort 8080 -InternalAddress ::1 -NoSnat -InInterface eth0", "LoopbackNotSupported" },
    };

    [Theory]
    [MemberData(nameof(NewFailures))]
    public void New_refuses_bad_input_before_running_anything(string script, string errorId)
    {
        var r = PsRunner.Run(script);
        var expected = SystemChecks.IsRoot() ? errorId : "NotRoot";
        var error = Assert.Single(r.Errors);
        Assert.Equal($"{expected},{NewId}", error.FullyQualifiedErrorId);
        Assert.Empty(r.Output);
        if (SystemChecks.IsRoot())
        {
            Assert.IsAssignableFrom<NetfilterException>(error.Exception);
            Assert.Equal(ErrorMapper.CategoryOf(((NetfilterException)error.Exception).Kind), error.CategoryInfo.Category);
        }
    }

    [Fact]
    public void Error_categories_follow_the_failure_kind()
    {
        if (!SystemChecks.IsRoot())
        {
            return;
        }

        Assert.Equal(ErrorCategory.InvalidArgument, PsRunner.Run("New-PortForward -ExternalPort 1 -InternalAddress abc").Errors.Single().CategoryInfo.Category);
        var notFound = PsRunner.Run($"New-PortForward -ExternalPort 1 -InternalAddress 198.51.100.10 -NetworkNamespace {MissingNamespace}").Errors.Single();
        Assert.Equal(ErrorCategory.ObjectNotFound, notFound.CategoryInfo.Category);
        Assert.Equal(MissingNamespace, notFound.TargetObject);
    }

    [Fact]
    public void Each_bad_item_in_a_pipeline_gets_its_own_error()
    {
        var r = PsRunner.Run("""
            @(
              [pscustomobject]@{ Name = 'a b'; ExternalPort = 8080; InternalAddress = '198.51.100.10'; SnatMode = 'None' },
              [pscustomobject]@{ Name = 'ok'; ExternalPort = 8081; InternalAddress = '10.1'; SnatMode = 'None' },
              [pscustomobject]@{ Name = 'ok2'; ExternalPort = 8082; InternalAddress = '198.51.100.10'; SnatMode = 'None'; NetworkNamespace = '/x' }
            ) | New-PortForward
            """);
        var expected = SystemChecks.IsRoot()
            ? new[] { $"InvalidName,{NewId}", $"InvalidAddress,{NewId}", $"InvalidNetworkNamespace,{NewId}" }
            : new[] { $"NotRoot,{NewId}" };
        Assert.Equal(expected, r.ErrorIds);
        Assert.Empty(r.Output);
    }

    [Theory]
    [InlineData("New-PortForward -ExternalPort 70000 -InternalAddress 198.51.100.10", "ParameterArgumentValidationError")]
    [InlineData("New-PortForward -ExternalPort 0 -InternalAddress 198.51.100.10", "ParameterArgumentValidationError")]
    [InlineData("New-PortForward -ExternalPort 8080 -InternalPort 65536 -InternalAddress 198.51.100.10", "ParameterArgumentValidationError")]
    [InlineData("New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -Protocol icmp", "CannotConvertArgumentNoMessage")]
    [InlineData("New-PortForward -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatMode Nope", "CannotConvertArgumentNoMessage")]
    [InlineData("New-PortForward -ExternalPort eighty -InternalAddress 198.51.100.10", "ParameterArgumentTransformationError")]
    [InlineData("New-PortForward -ExternalPort 8010-8000 -InternalAddress 198.51.100.10", "ParameterArgumentTransformationError")]
    [InlineData("New-PortForward -ExternalPort 8000-70000 -InternalAddress 198.51.100.10", "ParameterArgumentTransformationError")]
    [InlineData("New-PortForward -ExternalPort 8000 -ExternalPortEnd 0 -InternalAddress 198.51.100.10", "ParameterArgumentValidationError")]
    public void Parameter_binding_refuses_out_of_range_and_unknown_values(string script, string errorId)
    {
        var r = PsRunner.Run(script);
        var error = Assert.Single(r.Errors);
        Assert.Equal($"{errorId},{NewId}", error.FullyQualifiedErrorId);
        Assert.Empty(r.Output);
    }

    [Theory]
    [InlineData("Remove-PortForward -Name 'a b'", "InvalidName")]
    [InlineData("Remove-PortForward -Name 'web' -NetworkNamespace /var/run/netns/x", "InvalidNetworkNamespace")]
    [InlineData("Remove-PortForward -Name 'web' -NetworkNamespace {0}", "NetworkNamespaceNotFound")]
    [InlineData("Remove-PortForward -Name 'web*' -NetworkNamespace {0}", "NetworkNamespaceNotFound")]
    public void Remove_refuses_bad_input_before_running_anything(string script, string errorId)
    {
        var r = PsRunner.Run(string.Format(System.Globalization.CultureInfo.InvariantCulture, script, MissingNamespace));
        var expected = SystemChecks.IsRoot() ? errorId : "NotRoot";
        Assert.Equal($"{expected},{RemoveId}", Assert.Single(r.Errors).FullyQualifiedErrorId);
        Assert.Empty(r.Output);
    }

    [Theory]
    [InlineData("Get-PortForward -NetworkNamespace /var/run/netns/x", "InvalidNetworkNamespace")]
    [InlineData("Get-PortForward -NetworkNamespace {0}", "NetworkNamespaceNotFound")]
    [InlineData("Get-PortForward -NetworkNamespace {0} -InternalAddress 10.1", "InvalidAddress")]
    public void Get_refuses_bad_input_before_running_anything(string script, string errorId)
    {
        // Get has no root check of its own before these: they come first as root and as a user.
        var r = PsRunner.Run(string.Format(System.Globalization.CultureInfo.InvariantCulture, script, MissingNamespace));
        Assert.Equal($"{errorId},{GetId}", Assert.Single(r.Errors).FullyQualifiedErrorId);
        Assert.Empty(r.Output);
    }

    [Fact]
    public void Mandatory_parameters_are_enforced_without_a_prompt()
    {
        var r = PsRunner.Run("New-PortForward -InternalAddress 198.51.100.10");
        Assert.Contains(r.Errors, e => e.FullyQualifiedErrorId.Contains(NewId, StringComparison.Ordinal));
        Assert.Empty(r.Output);
    }
}
