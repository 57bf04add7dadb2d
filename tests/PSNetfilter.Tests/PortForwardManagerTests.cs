using System.Net;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>The iptables backend through the engine (with the process double and the model kernel): decisions per item.</summary>
public sealed partial class PortForwardManagerTests : IDisposable
{
    private readonly string _lockDir = Path.Combine(Path.GetTempPath(), "psnfx-locks-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_lockDir))
        {
            Directory.Delete(_lockDir, recursive: true);
        }
    }

    private sealed class Rig
    {
        public Rig(string lockDir, string save4, string save6, string? ns)
        {
            Runner.SaveText4 = save4;
            Runner.SaveText6 = save6;
            Host = new NetfilterHost(ns, Runner, m => Log.Add(m))
            {
                SkipSystemChecks = true,
                LockDirectory = lockDir,
                LockTimeout = TimeSpan.FromMilliseconds(300),
                Kernel = Runner,
            };
            Manager = new PortForwardManager(Host, Observer, new IptablesNetfilterBackend(Host, FakeProcessRunner.Backend));
        }

        public FakeProcessRunner Runner { get; } = new();

        public RecordingObserver Observer { get; } = new();

        public List<string> Log { get; } = new();

        public NetfilterHost Host { get; }

        public PortForwardManager Manager { get; }

        public async Task<IReadOnlyList<ChangeResult>> NewAsync(bool force, params PortForwardRequest[] requests)
        {
            var defs = await Manager.ResolveAsync(requests, CancellationToken.None);
            using var session = await Manager.OpenAsync(CancellationToken.None);
            Manager.PlanAdds(session, defs, force);
            return await Manager.CommitAsync(session, CancellationToken.None);
        }

        public Task<IReadOnlyList<ChangeResult>> NewAsync(bool force, params PortForwardDefinition[] defs) =>
            NewAsync(force, defs.Select(Request).ToArray());

        /// <summary>New-PortForward's streamed change: opened on the first forwards, then one PlanAdds per forward.</summary>
        public async Task<IReadOnlyList<ChangeResult>?> StreamAsync(bool force, IReadOnlyList<PortForwardDefinition> defs, Action<ChangeSession>? beforeCommit = null)
        {
            var first = defs.Take(IptablesNetfilterBackend.StreamFrom).ToList();
            using var session = await Manager.TryOpenStreamingAsync(first, CancellationToken.None);
            if (session is null)
            {
                return null;
            }

            Manager.PlanAdds(session, first, force);
            foreach (var def in defs.Skip(first.Count))
            {
                Manager.PlanAdds(session, new[] { def }, force);
            }

            beforeCommit?.Invoke(session);
            return await Manager.CommitAsync(session, CancellationToken.None);
        }

        public async Task<IReadOnlyList<ChangeResult>> RemoveAsync(params NameSelector[] selectors)
        {
            using var session = await Manager.OpenAsync(CancellationToken.None);
            Manager.PlanRemoves(session, selectors);
            return await Manager.CommitAsync(session, CancellationToken.None);
        }
    }

    private Rig Make(string save4 = "", string save6 = "", string? ns = null) => new(_lockDir, save4, save6, ns);

    private static string OwnedOnly => Golden.Read("nft", "owned-only.v4.save");

    private static PortForwardRequest Request(PortForwardDefinition d) =>
        new(d.Name, d.Protocol, d.ExternalAddress, d.ExternalPort, d.InternalAddress, d.InternalPort, d.SnatMode, d.SnatAddress, d.Description);

    private static NameSelector Literal(string name) => NameSelector.Parse(name);

    private static NameSelector Pattern(string text) => NameSelector.Parse(text);

    [Fact]
    public async Task Same_definition_is_Unchanged_and_nothing_is_restored()
    {
        var rig = Make(OwnedOnly);
        var results = await rig.NewAsync(false, Defs.Web, Defs.Dns);

        Assert.Equal(new[] { ("web", ChangeKind.Unchanged), ("dns", ChangeKind.Unchanged) }, results.Select(r => (r.Forward.Name, r.Kind)));
        Assert.All(results, r => Assert.False(r.Changed));
        Assert.Equal(0, rig.Runner.RestoreCount);
        Assert.Empty(rig.Observer.ShouldProcessCalls);
        Assert.Empty(rig.Observer.Failures);
        Assert.Empty(rig.Runner.SysctlWrites);
        Assert.Contains(rig.Observer.Verboses, v => v.Contains("'web' already exists with the same definition", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Other_definition_without_force_is_PortForwardExists()
    {
        var rig = Make(OwnedOnly);
        var changed = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), 80, SnatMode.Snat, Defs.Ip("198.51.100.1"), null);
        var results = await rig.NewAsync(false, changed);

        Assert.Empty(results);
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("PortForwardExists", error.ErrorId);
        Assert.Equal(FailureKind.ResourceExists, error.Kind);
        Assert.Contains("InternalPort 8080 -> 80", error.Message);
        Assert.Equal(0, rig.Runner.RestoreCount);
    }

    [Fact]
    public async Task Other_definition_with_force_is_Replaced_in_one_payload()
    {
        var rig = Make(OwnedOnly);
        var changed = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.10"), 80, SnatMode.Snat, Defs.Ip("198.51.100.1"), "new");
        var results = await rig.NewAsync(true, changed);

        var r = Assert.Single(results);
        Assert.Equal(ChangeKind.Replaced, r.Kind);
        Assert.True(r.Changed);
        Assert.Equal(changed, r.Forward.Definition);
        var (family, payload) = Assert.Single(rig.Runner.Restores);
        Assert.Equal(IpFamily.IPv4, family);
        var lines = payload.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(new[] { "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 1", "-D PSNF-FORWARD 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("-A", StringComparison.Ordinal) && l.Contains("psnf:v1:web:", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l is ":PSNF-PREROUTING - [0:0]" or ":PSNF-POSTROUTING - [0:0]" or ":PSNF-FORWARD - [0:0]" || l.StartsWith("-I", StringComparison.Ordinal) || l.StartsWith("-X", StringComparison.Ordinal));
        ChangePlannerTests.AssertOnlyTouchesModuleChains(ToPayload(payload));
        var (target, action) = Assert.Single(rig.Observer.ShouldProcessCalls);
        Assert.StartsWith("Replace port forward (was: web Tcp 203.0.113.1:8080 -> 198.51.100.10:8080", action);
        Assert.Contains("198.51.100.10:80", target);
        var restore = rig.Runner.Requests.Single(q => q.Program == FakeProcessRunner.Restore4);
        Assert.Equal(new[] { "-w", "--noflush" }, restore.Arguments);
    }

    [Fact]
    public async Task Incomplete_forward_needs_force_and_then_is_restored_whole()
    {
        // web without its FORWARD rule: the DNAT and SNAT rules still carry the whole definition.
        var text = string.Join('\n', OwnedOnly.Split('\n').Where(l => !l.Contains("psnf:v1:web:fwd", StringComparison.Ordinal)));
        var rig = Make(text);
        Assert.Empty(await rig.NewAsync(false, Defs.Web));
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("PortForwardIncomplete", error.ErrorId);
        Assert.Contains("missing Forward", error.Message);
        Assert.Equal(0, rig.Runner.RestoreCount);

        var forced = Make(text);
        Assert.Equal(ChangeKind.Replaced, Assert.Single(await forced.NewAsync(true, Defs.Web)).Kind);
        var lines = Assert.Single(forced.Runner.Restores).Payload.Split('\n');
        Assert.Equal(new[] { "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("-A", StringComparison.Ordinal) && l.Contains(" psnf:v1:web:", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Drifted_forward_missing_its_snat_rule_is_restored_whole_with_force()
    {
        var rig = Make(Golden.Read("nft", "owned-drift.v4.save"));
        Assert.Equal(ChangeKind.Replaced, Assert.Single(await rig.NewAsync(true, Defs.Web)).Kind);
        var lines = Assert.Single(rig.Runner.Restores).Payload.Split('\n');
        Assert.Equal(new[] { "-D PSNF-PREROUTING 1", "-D PSNF-FORWARD 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("-A", StringComparison.Ordinal) && l.Contains(" psnf:v1:web:", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains("--to-source 198.51.100.1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Drifted_forward_missing_its_snat_rule_is_reported_incomplete()
    {
        var rig = Make(Golden.Read("nft", "owned-drift.v4.save"));
        Assert.Empty(await rig.NewAsync(false, Defs.Web));
        Assert.Equal("PortForwardIncomplete", Assert.Single(rig.Observer.Failures).ErrorId);
    }

    [Fact]
    public async Task Overlapping_external_endpoint_is_ExternalEndpointInUse()
    {
        var rig = Make(OwnedOnly);
        var sameEndpoint = PortForwardDefinition.Create("web2", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var anyOverSpecific = PortForwardDefinition.Create("ssh2", Protocol.Tcp, null, 2222, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var specificUnderAny = PortForwardDefinition.Create("dns2", Protocol.Udp, Defs.Ip("203.0.113.7"), 5353, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var otherProtocol = PortForwardDefinition.Create("web-udp", Protocol.Udp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);
        var otherAddress = PortForwardDefinition.Create("web-b", Protocol.Tcp, Defs.Ip("203.0.113.2"), 8080, Defs.Ip("198.51.100.11"), null, SnatMode.None, null, null);

        var results = await rig.NewAsync(false, sameEndpoint, anyOverSpecific, specificUnderAny, otherProtocol, otherAddress);

        Assert.Equal(new[] { "web-udp", "web-b" }, results.Select(r => r.Forward.Name));
        Assert.All(results, r => Assert.Equal(ChangeKind.Created, r.Kind));
        Assert.Equal(3, rig.Observer.Failures.Count);
        Assert.All(rig.Observer.Failures, f => Assert.Equal("ExternalEndpointInUse", f.ErrorId));
        Assert.Equal(new object?[] { "web2", "ssh2", "dns2" }, rig.Observer.Failures.Select(f => f.Target));
        Assert.Contains("'web' already forwards tcp 203.0.113.1:8080", rig.Observer.Failures[0].Message);
        Assert.Single(rig.Runner.Restores);
    }

    [Fact]
    public async Task Two_new_forwards_on_one_endpoint_in_one_batch_clash()
    {
        var rig = Make();
        var a = Defs.Simple("a", 9000);
        var b = Defs.Simple("b", 9000);
        var results = await rig.NewAsync(false, a, b);
        Assert.Equal("a", Assert.Single(results).Forward.Name);
        Assert.Equal("ExternalEndpointInUse", Assert.Single(rig.Observer.Failures).ErrorId);
    }

    [Fact]
    public async Task Same_name_twice_in_one_batch()
    {
        var rig = Make();
        var a = Defs.Simple("a", 9000);
        var a2 = Defs.Simple("a", 9001);
        var results = await rig.NewAsync(false, a, a, a2);
        Assert.Equal(ChangeKind.Created, Assert.Single(results).Kind);
        var error = Assert.Single(rig.Observer.Failures);
        Assert.Equal("PortForwardExists", error.ErrorId);
        Assert.Contains("earlier in the same pipeline", error.Message);
        Assert.Equal(3, Assert.Single(rig.Runner.Restores).Payload.Split('\n').Count(l => l.Contains(" psnf:v1:", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("iptables-restore: line {0} failed\n")]
    [InlineData("iptables-restore v1.8.9 (nf_tables): Couldn't load match `conntrack'\nError occurred at line: {0}\nTry `iptables-restore -h' for more information.\n")]
    public async Task A_refused_forward_is_dropped_and_the_rest_applied_again(string stderrFormat)
    {
        var rig = Make();
        var a = Defs.Simple("a", 9000);
        var bad = Defs.Simple("bad", 9001);
        var c = Defs.Simple("c", 9002);
        var failedLine = 0;
        rig.Runner.RestoreAnswer = (_, index, stdin) =>
        {
            if (index > 0)
            {
                return new ProcessResult(0, string.Empty, string.Empty);
            }

            failedLine = Array.FindIndex(stdin.Split('\n'), l => l.Contains("psnf:v1:bad:snat", StringComparison.Ordinal)) + 1;
            return new ProcessResult(1, string.Empty, string.Format(System.Globalization.CultureInfo.InvariantCulture, stderrFormat, failedLine));
        };

        var results = await rig.NewAsync(false, a, bad, c);

        Assert.Equal(new[] { "a", "c" }, results.Select(r => r.Forward.Name));
        Assert.All(results, r => Assert.Equal(ChangeKind.Created, r.Kind));
        Assert.Equal(2, rig.Runner.RestoreCount);
        Assert.Contains("psnf:v1:bad:", rig.Runner.Restores[0].Payload);
        Assert.DoesNotContain("psnf:v1:bad:", rig.Runner.Restores[1].Payload);
        Assert.Contains("psnf:v1:a:fwd", rig.Runner.Restores[1].Payload);
        Assert.Contains("psnf:v1:c:fwd", rig.Runner.Restores[1].Payload);
        var error = Assert.IsType<CommandFailedException>(Assert.Single(rig.Observer.Failures));
        Assert.Equal("IptablesCommandFailed", error.ErrorId);
        Assert.Equal("bad", error.Target);
        Assert.True(failedLine > 1);
        Assert.Equal(failedLine, error.FailedLine);
        Assert.Contains("psnf:v1:bad:snat", error.FailedInput);
        Assert.Equal(1, error.ExitCode);
    }

    [Fact]
    public async Task A_refusal_not_tied_to_a_forward_fails_the_whole_change()
    {
        var rig = Make();
        rig.Runner.RestoreAnswer = (_, _, _) => new ProcessResult(4, string.Empty, "iptables-restore: line 1 failed\n");
        var ex = await Assert.ThrowsAsync<CommandFailedException>(() => rig.NewAsync(false, Defs.Simple("a", 9000)));
        Assert.Equal(1, ex.FailedLine);
        Assert.Equal("*nat", ex.FailedInput);
        Assert.Null(ex.Target);
        Assert.Equal(1, rig.Runner.RestoreCount);
    }
}
