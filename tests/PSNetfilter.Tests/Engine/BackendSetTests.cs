using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Engine;

/// <summary>
/// Two backends of one namespace behind the engine (<see cref="BackendSet"/>, with backend doubles): reads see both,
/// each change goes to the backend that holds or gets the forward, and a move commits its add before its removal,
/// and no removal when the add was refused.
/// </summary>
public sealed class BackendSetTests : IDisposable
{
    private readonly TempDir _locks = new();
    private readonly FakeProcessRunner _kernel = new();
    private readonly RecordingObserver _observer = new();
    private readonly List<string> _log = new();
    private readonly FakeBackend _a;
    private readonly FakeBackend _b;

    public BackendSetTests()
    {
        Directory.CreateDirectory(_locks.Path);
        _a = new FakeBackend("a") { CommitLog = _log };
        _b = new FakeBackend("b") { CommitLog = _log };
    }

    public void Dispose() => _locks.Dispose();

    /// <summary>A manager whose new forwards go to <paramref name="preferred"/>; <paramref name="chosen"/>: -Backend was given.</summary>
    private PortForwardManager Manager(FakeBackend preferred, bool chosen)
    {
        var host = new NetfilterHost(null, _kernel, _ => { }) { SkipSystemChecks = true, LockDirectory = _locks.Path, Kernel = _kernel };
        var other = preferred == _a ? _b : _a;
        return new PortForwardManager(host, _observer, new BackendSet(preferred, new[] { other })) { MoveToChosenBackend = chosen };
    }

    [Fact]
    public async Task Reads_see_the_forwards_of_both_backends_with_their_backend()
    {
        _a.Live.Add(Defs.Simple("x", 1001));
        _b.Live.Add(Defs.Simple("y", 1002));

        var all = await Manager(_a, chosen: false).GetAsync(CancellationToken.None);

        Assert.Equal(new[] { ("x", "a"), ("y", "b") }, all.Select(f => (f.Name, f.Backend!)));
    }

    [Fact]
    public async Task A_move_adds_in_the_chosen_backend_first_and_then_removes_from_the_other()
    {
        _a.Live.Add(Defs.Simple("x", 1001));

        var r = Assert.Single(await AddAsync(Manager(_b, chosen: true), Defs.Simple("x", 1001)));

        Assert.Equal(ChangeKind.Replaced, r.Kind);
        Assert.Equal("b", r.Forward.Backend);
        Assert.Equal(new[] { "b: +x", "a: -x" }, _log);
        Assert.Empty(_a.Live);
        Assert.Equal("x", Assert.Single(_b.Live).Name);
    }

    [Fact]
    public async Task A_move_whose_add_is_refused_leaves_the_forward_where_it_was()
    {
        _a.Live.Add(Defs.Simple("x", 1001));
        _b.Refuse.Add("x");

        Assert.Empty(await AddAsync(Manager(_b, chosen: true), Defs.Simple("x", 1001)));

        Assert.Equal("FakeRefused", Assert.Single(_observer.Failures).ErrorId);
        Assert.Equal(new[] { "b: +x" }, _log);
        Assert.Equal("x", Assert.Single(_a.Live).Name);
    }

    [Fact]
    public async Task Without_a_chosen_backend_the_same_forward_stays_and_a_replace_stays_in_its_backend()
    {
        _a.Live.Add(Defs.Simple("x", 1001));
        var manager = Manager(_b, chosen: false);

        Assert.Equal(ChangeKind.Unchanged, Assert.Single(await AddAsync(manager, Defs.Simple("x", 1001))).Kind);
        var replaced = Assert.Single(await AddAsync(manager, Defs.Simple("x", 2002), force: true));

        Assert.Equal(ChangeKind.Replaced, replaced.Kind);
        Assert.Equal("a", replaced.Forward.Backend);
        Assert.Equal(new[] { "a: +x" }, _log);
        Assert.Empty(_b.Live);
    }

    [Fact]
    public async Task A_removal_goes_to_the_backend_that_holds_the_forward()
    {
        _a.Live.Add(Defs.Simple("x", 1001));
        _b.Live.Add(Defs.Simple("y", 1002));
        var manager = Manager(_a, chosen: false);

        using (var session = await manager.OpenAsync(CancellationToken.None))
        {
            manager.PlanRemoves(session, new[] { NameSelector.Parse("*") });
            Assert.Equal(2, (await manager.CommitAsync(session, CancellationToken.None)).Count);
        }

        Assert.Equal(new[] { "a: -x", "b: -y" }, _log.Order(StringComparer.Ordinal));
        Assert.Empty(_a.Live);
        Assert.Empty(_b.Live);
    }

    private static async Task<IReadOnlyList<ChangeResult>> AddAsync(PortForwardManager manager, PortForwardDefinition def, bool force = false)
    {
        using var session = await manager.OpenAsync(CancellationToken.None, readForwarding: true, adding: new[] { def });
        manager.PlanAdds(session, new[] { def }, force);
        return await manager.CommitAsync(session, CancellationToken.None);
    }
}
