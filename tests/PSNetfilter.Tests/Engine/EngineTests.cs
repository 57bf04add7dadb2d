using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Engine;

/// <summary>
/// The engine against a backend double (<see cref="FakeBackend"/>): what it decides, what it hands the backend,
/// and what it does after the commit, with no iptables in sight.
/// </summary>
public sealed class EngineTests : IDisposable
{
    private readonly TempDir _locks = new();
    private readonly FakeBackend _backend = new();
    private readonly RecordingObserver _observer = new();
    private readonly FakeProcessRunner _kernel = new();

    public EngineTests()
    {
        Directory.CreateDirectory(_locks.Path);
        var host = new NetfilterHost(null, _kernel, _ => { })
        {
            SkipSystemChecks = true,
            LockDirectory = _locks.Path,
            LockTimeout = TimeSpan.FromMilliseconds(300),
            Kernel = _kernel,
        };
        Manager = new PortForwardManager(host, _observer, _backend);
    }

    private PortForwardManager Manager { get; }

    public void Dispose() => _locks.Dispose();

    [Fact]
    public async Task A_new_forward_is_handed_to_the_backend_once_and_reported_created()
    {
        var results = await AddAsync(Defs.Web);

        Assert.Equal(ChangeKind.Created, Assert.Single(results).Kind);
        Assert.Equal("fake", results[0].Forward.Backend);
        var committed = Assert.Single(Assert.Single(_backend.Commits));
        Assert.Equal(Defs.Web, committed.New);
        Assert.Null(committed.Old);
        Assert.Equal(new[] { Defs.Web }, _backend.Live);
        Assert.Equal("fake", Manager.Backend.Name);
    }

    [Fact]
    public async Task The_same_definition_again_is_unchanged_and_the_backend_is_given_nothing()
    {
        _backend.Live.Add(Defs.Web);

        var results = await AddAsync(Defs.Web);

        Assert.Equal(ChangeKind.Unchanged, Assert.Single(results).Kind);
        Assert.Empty(Assert.Single(_backend.Commits));
        Assert.Empty(_backend.Accepted);
    }

    [Fact]
    public async Task Another_definition_of_an_existing_name_is_refused_without_force_and_replaced_with_it()
    {
        _backend.Live.Add(Defs.Simple("web", 8080));
        var other = Defs.Simple("Web", 9090);

        var refused = await AddAsync(other);
        Assert.Empty(refused);
        Assert.Equal("PortForwardExists", Assert.Single(_observer.Failures).ErrorId);

        var replaced = await AddAsync(other, force: true);
        Assert.Equal(ChangeKind.Replaced, Assert.Single(replaced).Kind);
        var change = Assert.Single(_backend.Commits[^1]);
        Assert.Equal("web", change.Old!.Name);
        Assert.Equal(other, change.New);
    }

    [Fact]
    public async Task An_overlapping_external_endpoint_is_refused_by_the_engine_whatever_the_backend()
    {
        _backend.Live.Add(Defs.Simple("a", 8080));

        var results = await AddAsync(Defs.Simple("b", 8080));

        Assert.Empty(results);
        Assert.Equal("ExternalEndpointInUse", Assert.Single(_observer.Failures).ErrorId);
        Assert.Empty(_backend.Accepted);
    }

    [Fact]
    public async Task A_forward_the_backend_refuses_is_left_out_and_the_rest_is_reported_and_recorded()
    {
        _backend.Refuse.Add("b");

        var results = await AddAsync(Defs.Simple("a", 1001), Defs.Simple("b", 1002), Defs.Simple("c", 1003));

        Assert.Equal(new[] { "a", "c" }, results.Select(r => r.Forward.Name));
        Assert.Equal("FakeRefused", Assert.Single(_observer.Failures).ErrorId);
        Assert.Equal(new[] { "a", "c" }, IntentRecord.Read(Manager.IntentPath, await NamespaceThread.RunAsync(null, () => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? string.Empty)).Select(d => d.Name).Order());
    }

    [Fact]
    public async Task Forwarding_that_is_off_is_switched_on_after_the_commit_with_a_warning()
    {
        _kernel.Sysctl["net.ipv4.ip_forward"] = "0";

        await AddAsync(Defs.Web);

        Assert.Equal("1", _kernel.Sysctl["net.ipv4.ip_forward"]);
        Assert.Contains(_observer.Warnings, w => w.Contains("net.ipv4.ip_forward was 0", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_removal_of_a_name_that_matches_nothing_is_port_forward_not_found()
    {
        _backend.Live.Add(Defs.Web);

        using (var session = await Manager.OpenAsync(CancellationToken.None))
        {
            Manager.PlanRemoves(session, new[] { NameSelector.Parse("nosuch"), NameSelector.Parse("w*") });
            var results = await Manager.CommitAsync(session, CancellationToken.None);
            Assert.Equal(ChangeKind.Removed, Assert.Single(results).Kind);
        }

        Assert.Equal("PortForwardNotFound", Assert.Single(_observer.Failures).ErrorId);
        Assert.Empty(_backend.Live);
    }

    [Fact]
    public async Task A_change_that_is_not_committed_is_disposed_and_its_lock_released()
    {
        using (var session = await Manager.OpenAsync(CancellationToken.None))
        {
            Manager.PlanAdds(session, new[] { Defs.Web }, force: false);
        }

        Assert.Equal(1, _backend.Disposed);
        Assert.Empty(_backend.Commits);
        Assert.Empty(_backend.Live);
        using var free = NamespaceLock.TryAcquire(null, _locks.Path);
        Assert.NotNull(free);
    }

    [Fact]
    public async Task Test_port_forward_carries_the_backends_own_findings()
    {
        _backend.Live.Add(Defs.Web);

        var (findings, names) = await Manager.DiagnoseAsync(new[] { NameSelector.Parse("*") }, connect: false, CancellationToken.None);

        Assert.Contains(findings, f => f.Check == "FakeCheck" && f.Forward == "web");
        Assert.Contains("web", names);
    }

    private async Task<IReadOnlyList<ChangeResult>> AddAsync(PortForwardDefinition first, params PortForwardDefinition[] more) =>
        await AddAsync(new[] { first }.Concat(more).ToList(), force: false);

    private Task<IReadOnlyList<ChangeResult>> AddAsync(PortForwardDefinition def, bool force) => AddAsync(new[] { def }, force);

    private async Task<IReadOnlyList<ChangeResult>> AddAsync(IReadOnlyList<PortForwardDefinition> defs, bool force)
    {
        using var session = await Manager.OpenAsync(CancellationToken.None, readForwarding: true, adding: defs);
        Manager.PlanAdds(session, defs, force);
        return await Manager.CommitAsync(session, CancellationToken.None);
    }
}
