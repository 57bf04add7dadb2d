using PSNetfilter.Core.Backends;
using PSNetfilter.Core.Backends.Nftables;
using PSNetfilter.Core.Engine;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// The nftables backend behind the engine, in the real kernel (a psnfT- namespace): the same decisions and
/// results as the iptables backend, one transaction per change, only its own table touched, and a refused line
/// mapped back to its forward while the rest is applied.
/// </summary>
public sealed class NftablesBackendTests : IDisposable
{
    private const string Foreign = "table inet other {\n\tchain gate {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established accept\n\t}\n}\n";

    private readonly TempDir _locks = new();
    private readonly NftTestNamespace _ns = new();
    private readonly RecordingObserver _observer = new();

    public void Dispose()
    {
        _ns.Dispose();
        _locks.Dispose();
    }

    private PortForwardManager Manager(NftRunner? runner = null)
    {
        var host = new NetfilterHost(_ns.Name, log: _ => { }) { LockDirectory = _locks.Path };
        return new PortForwardManager(host, _observer, runner is null ? BackendCatalog.Create(BackendCatalog.Nftables, host) : new NftablesNetfilterBackend(host, runner));
    }

    [RootFact]
    public async Task Forwards_round_trip_through_the_engine_and_only_our_table_changes()
    {
        _ns.Nft(Foreign);
        var foreign = _ns.ForeignRuleset();
        var manager = Manager();
        var defs = new[] { Defs.Web, Defs.Dns, Defs.Web6, Defs.SshDirect };

        var created = await AddAsync(manager, defs, force: false);
        Assert.All(created, r => Assert.Equal(ChangeKind.Created, r.Kind));
        Assert.All(created, r => Assert.Equal("nftables", r.Forward.Backend));

        var read = await manager.GetAsync(CancellationToken.None);
        Assert.Equal(defs.Select(d => d.Name).Order(StringComparer.Ordinal), read.Select(f => f.Name));
        Assert.All(read, f => Assert.True(f.IsComplete, f.Name + ": " + f.Status));
        Assert.All(read, f => Assert.Equal(defs.Single(d => d.Name == f.Name), f.Definition));
        Assert.Equal(foreign, _ns.ForeignRuleset());

        var again = await AddAsync(manager, defs, force: false);
        Assert.All(again, r => Assert.Equal(ChangeKind.Unchanged, r.Kind));

        var moved = Defs.Simple("web", 9443, SnatMode.Masquerade, "198.51.100.11");
        var replaced = Assert.Single(await AddAsync(manager, new[] { moved }, force: true));
        Assert.Equal(ChangeKind.Replaced, replaced.Kind);

        using (var session = await manager.OpenAsync(CancellationToken.None))
        {
            manager.PlanRemoves(session, new[] { NameSelector.Parse("dns"), NameSelector.Parse("ssh*") });
            Assert.Equal(2, (await manager.CommitAsync(session, CancellationToken.None)).Count);
        }

        var left = await manager.GetAsync(CancellationToken.None);
        Assert.Equal(new[] { "web", "web6" }, left.Select(f => f.Name));
        Assert.Equal(moved, left[0].Definition);
        Assert.Equal(foreign, _ns.ForeignRuleset());
        Assert.Empty(_observer.Failures);
    }

    [RootFact]
    public async Task A_refused_line_fails_its_forward_only_and_the_rest_is_one_transaction()
    {
        var real = NftRunner.For(new NetfilterHost(_ns.Name));
        var refusing = new RefusingRunner(real, "psnf:v1:b:");
        var manager = Manager(refusing);

        var results = await AddAsync(manager, new[] { Defs.Simple("a", 1001), Defs.Simple("b", 1002), Defs.Simple("c", 1003) }, force: false);

        Assert.Equal(new[] { "a", "c" }, results.Select(r => r.Forward.Name));
        var failure = Assert.IsType<CommandFailedException>(Assert.Single(_observer.Failures));
        Assert.Equal("NftCommandFailed", failure.ErrorId);
        Assert.Equal("b", failure.Target);
        Assert.Contains("psnf:v1:b:", failure.FailedInput, StringComparison.Ordinal);
        Assert.Equal(2, refusing.Scripts.Count); // refused whole, then the rest in one transaction
        Assert.Equal(new[] { "a", "c" }, (await manager.GetAsync(CancellationToken.None)).Select(f => f.Name));
    }

    [RootFact]
    public async Task A_refused_batch_of_elements_is_tried_again_line_by_line_and_fails_its_forward_only()
    {
        // Many forwards: their elements go one line per set, so the refused line names no forward at first.
        var real = NftRunner.For(new NetfilterHost(_ns.Name));
        var refusing = new RefusingRunner(real, "psnf:v1:f17:fwd");
        var manager = Manager(refusing);
        var defs = Enumerable.Range(1, NftablesChange.BatchFromForwards + 8).Select(i => Defs.Simple($"f{i}", 2000 + i)).ToList();

        var results = await AddAsync(manager, defs, force: false);

        var expected = defs.Select(d => d.Name).Where(n => n != "f17").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, results.Select(r => r.Forward.Name).Order(StringComparer.Ordinal));
        var failure = Assert.IsType<CommandFailedException>(Assert.Single(_observer.Failures));
        Assert.Equal("NftCommandFailed", failure.ErrorId);
        Assert.Equal("f17", failure.Target);
        Assert.Equal(3, refusing.Scripts.Count); // the batch refused, the same line by line refused at f17, the rest
        Assert.True(refusing.Scripts[0].Split('\n').Count(l => l.StartsWith("add element", StringComparison.Ordinal)) <= NftTableLayout.Containers().Count());
        Assert.True(refusing.Scripts[1].Split('\n').Count(l => l.StartsWith("add element", StringComparison.Ordinal)) >= 2 * defs.Count);
        Assert.Equal(expected, (await manager.GetAsync(CancellationToken.None)).Select(f => f.Name).Order(StringComparer.Ordinal));
    }

    private static async Task<IReadOnlyList<ChangeResult>> AddAsync(PortForwardManager manager, IReadOnlyList<PortForwardDefinition> defs, bool force)
    {
        using var session = await manager.OpenAsync(CancellationToken.None, readForwarding: true, adding: defs);
        manager.PlanAdds(session, defs, force);
        return await manager.CommitAsync(session, CancellationToken.None);
    }

    /// <summary>nft as it is, except that a script with a line containing <c>marker</c> is refused at that line, as the kernel refuses one.</summary>
    private sealed class RefusingRunner(NftRunner inner, string marker) : NftRunner(inner.NetworkNamespace)
    {
        public List<string> Scripts { get; } = new();

        public override bool InProcess => inner.InProcess;

        public override Task<NftRunResult> RunAsync(string script, CancellationToken ct)
        {
            Scripts.Add(script);
            var lines = script.Split('\n');
            var at = Array.FindIndex(lines, l => l.Contains(marker, StringComparison.Ordinal));
            return at < 0
                ? inner.RunAsync(script, ct)
                : Task.FromResult(new NftRunResult(false, string.Empty, $"/dev/stdin:{at + 1}:1-10: Error: Could not process rule: File exists\n{lines[at]}\n") { ExitCode = 1 });
        }

        public override Task<NftRunResult> ListJsonAsync(string listCommand, CancellationToken ct) => inner.ListJsonAsync(listCommand, ct);
    }
}
