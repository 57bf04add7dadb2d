using System.Text.RegularExpressions;
using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// Forwards as elements and rules of one nftables table per namespace, <c>table inet psnetfilter</c>
/// (<see cref="NftTableLayout"/>), and nothing else: reading lists only that table (<c>nft -j list table</c>), so
/// its cost does not grow with other programs' rules, and every change of a pipeline, both families, NAT and
/// filter, is one <c>nft -f</c> transaction (<see cref="NftablesChange"/>): applied whole or not at all, so this
/// path needs no rollback.
/// </summary>
public sealed partial class NftablesNetfilterBackend : INetfilterBackend
{
    private readonly NetfilterHost _host;

    public NftablesNetfilterBackend(NetfilterHost host)
    {
        _host = host;
    }

    public string Name => BackendCatalog.Nftables;

    /// <summary>Never: the whole pipeline is one transaction at its end.</summary>
    public int StreamFromForwards => int.MaxValue;

    public string StreamTarget => "nft";

    public async Task<BackendSnapshot> ReadAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct) =>
        await ReadSnapshotAsync(options, ct).ConfigureAwait(false);

    public Task<bool> CanStreamAsync(CancellationToken ct) => Task.FromResult(false);

    public async Task<IBackendChange> OpenChangeAsync(IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, ReadOptions options, CancellationToken ct) =>
        new NftablesChange(this, await ReadSnapshotAsync(options, ct).ConfigureAwait(false), options);

    /// <summary>Nothing beyond what every backend reports: a forward with parts missing is Drift (from its MissingRules).</summary>
    public Task<IReadOnlyList<PortForwardFinding>> CheckAsync(BackendSnapshot snapshot, IReadOnlyList<PortForward> forwards, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<PortForwardFinding>>(Array.Empty<PortForwardFinding>());

    /// <summary>Reads the table (only it) and rebuilds the forwards; a table that does not exist is empty.</summary>
    internal async Task<NftablesSnapshot> ReadSnapshotAsync(ReadOptions options, CancellationToken ct)
    {
        var request = new ProcessRequest(ExecutableLocator.Require("nft", "nftables"), new[] { "-j", "list", "table", NftTableLayout.Family, NftTableLayout.TableName });
        var result = await _host.RunAsync(request, inNamespace: true, ct).ConfigureAwait(false);
        NftTableState state;
        if (result.ExitCode != 0)
        {
            if (!result.StandardError.Contains("No such file or directory", StringComparison.Ordinal))
            {
                throw new CommandFailedException(_host.Wrap(request).Display, result.ExitCode, result.StandardError, program: request.Program);
            }

            state = NftTableState.Empty;
        }
        else
        {
            state = NftTableReader.Read(result.StandardOutput);
        }

        var forwards = new List<PortForward>(state.Forwards.Count);
        foreach (var f in state.Forwards)
        {
            if (f.Definition is null)
            {
                options.Warning($"Port forward '{f.Name}' in table {NftTableLayout.Table} lost the part that holds its definition (missing {string.Join(", ", f.Missing)}); what is left of it is removed when a forward of that name is created again (New-PortForward -Name '{f.Name}' with its full definition).");
                continue;
            }

            var missing = f.Missing.Select(PartOf).Where(p => p is not null).Select(p => p!.Value).Distinct().ToList();
            forwards.Add(new PortForward(f.Definition)
            {
                NetworkNamespace = _host.NetworkNamespace,
                Backend = Name,
                MissingRules = missing,
                DefinitionPartial = f.Missing.Contains("description"),
                Packets = (ulong)Math.Max(0, f.Packets),
                Bytes = (ulong)Math.Max(0, f.Bytes),
                Persisted = options.IsPersisted?.Invoke(f.Name) ?? false,
            });
        }

        return new NftablesSnapshot(state, forwards.OrderBy(f => f.Name, StringComparer.Ordinal).ToList());
    }

    /// <summary>
    /// Runs one script as one transaction (<c>nft -f -</c>) in the namespace.
    /// </summary>
    /// <exception cref="CommandFailedException">NftCommandFailed, with the refused line of the script and its owner.</exception>
    internal async Task ApplyAsync(string script, IReadOnlyList<string?> owners, CancellationToken ct)
    {
        _host.Log("nft input:\n" + script.TrimEnd('\n'));
        var request = new ProcessRequest(ExecutableLocator.Require("nft", "nftables"), new[] { "-f", "-" }, script);
        var result = await _host.RunAsync(request, inNamespace: true, ct).ConfigureAwait(false);
        if (result.ExitCode == 0)
        {
            return;
        }

        var m = FailedLineRegex().Match(result.StandardError);
        int? line = m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
        var lines = script.Split('\n');
        string? input = line is { } l && l >= 1 && l <= lines.Length ? lines[l - 1] : null;
        string? owner = line is { } k && k >= 1 && k <= owners.Count ? owners[k - 1] : null;
        throw new CommandFailedException(_host.Wrap(request).Display, result.ExitCode, result.StandardError, line, input, owner, program: request.Program);
    }

    private static ForwardPart? PartOf(string missing) => missing switch
    {
        "dnat" => ForwardPart.Dnat,
        "local" => ForwardPart.Local,
        "snat" or "masq" => ForwardPart.Snat,
        "hairpin" => ForwardPart.Hairpin,
        "fwd" => ForwardPart.Forward,
        _ => null,
    };

    // nft names the input and the line of the first error: "/dev/stdin:7:1-20: Error: ...".
    [GeneratedRegex(@"^[^\n:]*:(\d+):\d+(?:-\d+)?: Error", RegexOptions.Multiline)]
    private static partial Regex FailedLineRegex();
}
