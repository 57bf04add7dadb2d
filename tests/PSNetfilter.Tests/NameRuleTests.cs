using PSNetfilter.Core.Backends;
using System.Diagnostics;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Persistence;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>
/// The one name rule (issue 14, items 4 and 5): names are case-insensitive and unique, selected by
/// <see cref="NameSelector"/> (literal or wildcard), refused when odd, and matched alike by the boot script.
/// </summary>
public sealed class NameRuleTests : IDisposable
{
    private readonly string _lockDir = Path.Combine(Path.GetTempPath(), "psnfx-names-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_lockDir))
        {
            Directory.Delete(_lockDir, recursive: true);
        }
    }

    private static string ErrorIdOf(Action action) => Assert.ThrowsAny<NetfilterException>(action).ErrorId;

    [Theory]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("-x")]
    [InlineData("--")]
    [InlineData("-")]
    public void Dot_names_and_a_leading_dash_are_InvalidName(string name)
    {
        Assert.Equal("InvalidName", ErrorIdOf(() => PortForwardDefinition.ValidateName(name)));
        Assert.Equal("InvalidName", ErrorIdOf(() => Defs.Simple(name, 9000)));
        Assert.Equal("InvalidName", ErrorIdOf(() => NameSelector.Parse(name)));
    }

    [Theory]
    [InlineData("a.b")]
    [InlineData("x-")]
    [InlineData("...")]
    [InlineData("_-")]
    public void Other_names_of_the_alphabet_stay_valid(string name) => PortForwardDefinition.ValidateName(name);

    [Theory]
    [InlineData("d[")]
    [InlineData("[]")]
    [InlineData("a[z-a]")]
    public void An_unreadable_pattern_is_InvalidNamePattern(string text) =>
        Assert.Equal("InvalidNamePattern", ErrorIdOf(() => NameSelector.Parse(text)));

    [Theory]
    [InlineData("web", "web", true)]
    [InlineData("WEB", "web", true)]
    [InlineData("web", "Web", true)]
    [InlineData("web", "web6", false)]
    [InlineData("w*", "Web6", true)]
    [InlineData("[a-c]B?", "ab1", true)]
    [InlineData("[a-c]B?", "db1", false)]
    [InlineData("web?", "web", false)]
    [InlineData("*.direct", "SSH.direct", true)]
    [InlineData("*.direct", "sshxdirect", false)]
    [InlineData("a`*", "a*", true)]
    [InlineData("a`*", "ab", false)]
    public void Selectors_match_ignoring_case(string text, string name, bool matches) =>
        Assert.Equal(matches, NameSelector.Parse(text).Matches(name));

    [Fact]
    public void Only_literal_selectors_that_match_nothing_are_unmatched()
    {
        var selectors = NameSelector.ParseAll(new[] { "WEB", "nope", "zz*" });
        Assert.Equal(new[] { "nope" }, NameSelector.Unmatched(selectors, new[] { "web", "dns" }).Select(s => s.Text));
        var notFound = PortForwardNames.NotFound("nope", "gw1");
        Assert.Equal(("PortForwardNotFound", FailureKind.ObjectNotFound), (notFound.ErrorId, notFound.Kind));
        Assert.Equal("No port forward named 'nope' exists in network namespace 'gw1'. Get-PortForward lists them.", notFound.Message);
    }

    private PortForwardManager Manager(FakeProcessRunner runner, RecordingObserver observer)
    {
        runner.SaveText4 = Golden.Read("nft", "owned-only.v4.save");
        var host = new NetfilterHost(null, runner, _ => { })
        {
            SkipSystemChecks = true,
            LockDirectory = _lockDir,
            LockTimeout = TimeSpan.FromMilliseconds(300),
            Kernel = runner,
        };
        return new PortForwardManager(host, observer, new IptablesNetfilterBackend(host, FakeProcessRunner.Backend));
    }

    private static PortForwardDefinition Renamed(PortForwardDefinition d, string name) =>
        PortForwardDefinition.Create(name, d.Protocol, d.ExternalAddress, d.ExternalPort, d.InternalAddress, d.InternalPort, d.SnatMode, d.SnatAddress, d.Description);

    [Theory]
    [InlineData("WEB", false)] // the same definition under another case
    [InlineData("Web", true)] // another port under another case
    public async Task A_name_that_differs_only_in_case_is_PortForwardExists(string name, bool otherPort)
    {
        var runner = new FakeProcessRunner();
        var observer = new RecordingObserver();
        var manager = Manager(runner, observer);
        var def = Renamed(otherPort ? Defs.Simple("x", 9999, SnatMode.Snat, "198.51.100.10") : Defs.Web, name);
        using var session = await manager.OpenAsync(CancellationToken.None);
        manager.PlanAdds(session, new[] { def }, force: false);
        var results = await manager.CommitAsync(session, CancellationToken.None);

        Assert.Empty(results);
        Assert.Equal("PortForwardExists", Assert.Single(observer.Failures).ErrorId);
        Assert.Equal(0, runner.RestoreCount);
    }

    [Fact]
    public async Task Two_names_of_one_pipeline_that_differ_in_case_are_one_name()
    {
        var runner = new FakeProcessRunner();
        var observer = new RecordingObserver();
        var manager = Manager(runner, observer);
        using var session = await manager.OpenAsync(CancellationToken.None);
        manager.PlanAdds(session, new[] { Defs.Simple("new1", 9001), Defs.Simple("NEW1", 9002) }, force: false);
        var results = await manager.CommitAsync(session, CancellationToken.None);

        Assert.Equal("new1", Assert.Single(results).Forward.Name);
        Assert.Equal("PortForwardExists", Assert.Single(observer.Failures).ErrorId);
    }

    [Fact]
    public async Task Remove_finds_a_literal_name_in_another_case()
    {
        var runner = new FakeProcessRunner();
        var observer = new RecordingObserver();
        var manager = Manager(runner, observer);
        using var session = await manager.OpenAsync(CancellationToken.None);
        manager.PlanRemoves(session, new[] { NameSelector.Parse("WEB") });
        var results = await manager.CommitAsync(session, CancellationToken.None);

        Assert.Equal("web", Assert.Single(results).Forward.Name);
        Assert.Empty(observer.Failures);
    }

    [Fact]
    public void A_boot_set_holds_one_forward_per_name_ignoring_case()
    {
        var error = Assert.Throws<NetfilterException>(() => new BootSet("psnetfilter.service", null, new[] { Defs.Web, Renamed(Defs.Simple("x", 9999), "WEB") }));
        Assert.Equal("DuplicateForwardName", error.ErrorId);
    }

    [Theory]
    [InlineData("-A PSNF-PREROUTING -p tcp -m comment --comment \"psnf:v1:web:dnat:snat:\" -j DNAT", true)]
    [InlineData("-A PSNF-PREROUTING -p tcp -m comment --comment \"psnf:v1:Web:dnat:snat:\" -j DNAT", true)]
    [InlineData("-A PSNF-FORWARD -m comment --comment psnf:v1:WEB:fwd -j ACCEPT", true)]
    [InlineData("-A PSNF-FORWARD -m comment --comment psnf:v1:web6:fwd -j ACCEPT", false)]
    [InlineData("-A PSNF-FORWARD -m comment --comment psnf:v1:wex:fwd -j ACCEPT", false)]
    [InlineData("-A PSNF-FORWARD -m comment --comment psnf:v1:ssh.direct:fwd -j ACCEPT", true)]
    [InlineData("-A PSNF-FORWARD -m comment --comment psnf:v1:sshXdirect:fwd -j ACCEPT", false)]
    public void The_boot_script_matches_saved_names_ignoring_case(string line, bool saved)
    {
        var script = BootScript.Generate(new BootSet("psnetfilter.service", null, new[] { Defs.Web, Defs.SshDirect }));
        var start = script.IndexOf("psnf_saved() {", StringComparison.Ordinal);
        var function = script[start..(script.IndexOf("\n}\n", start, StringComparison.Ordinal) + 3)];
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true };
        using var sh = Process.Start(psi)!;
        sh.StandardInput.Write(function + "if psnf_saved \"$1\"; then echo yes; else echo no; fi\n".Replace("$1", "'" + line.Replace("'", "'\\''", StringComparison.Ordinal) + "'", StringComparison.Ordinal));
        sh.StandardInput.Close();
        var answer = sh.StandardOutput.ReadToEnd().Trim();
        sh.WaitForExit();
        Assert.Equal(saved ? "yes" : "no", answer);
    }
}
