
namespace PSNetfilter.Core.Host;

/// <summary>
/// Runs nft in one network namespace: a script as one transaction, or a listing in JSON. Two ways with one
/// contract: in-process through libnftables (<see cref="InProcessNftRunner"/>) where the library is installed,
/// the nft executable otherwise (<see cref="ProcessNftRunner"/>). Both give the same <see cref="NftRunResult"/>,
/// and the same <see cref="CommandFailedException"/> (nft's error text, the refused line) from the checked calls.
/// </summary>
public abstract class NftRunner
{
    protected NftRunner(string? networkNamespace)
    {
        NetworkNamespace = NetworkNamespaceName.Check(networkNamespace);
    }

    /// <summary>A named namespace, or null for the host's own.</summary>
    public string? NetworkNamespace { get; }

    /// <summary>True for libnftables in this process, false for the nft executable.</summary>
    public abstract bool InProcess { get; }

    /// <summary>
    /// The in-process runner when libnftables is available (<see cref="Libnftables.IsAvailable"/>, checked once
    /// per process), otherwise the nft executable through <paramref name="host"/>'s process funnel. The environment
    /// variable <c>PSNETFILTER_NFT_RUNNER=process</c> chooses the executable (the first nft on PATH) even where the
    /// library loads: to use another nft than the library's, or to compare the two.
    /// </summary>
    public static NftRunner For(NetfilterHost host, Action<string>? log = null) =>
        Libnftables.IsAvailable && !ProcessRequested ? new InProcessNftRunner(host.NetworkNamespace, log) : new ProcessNftRunner(host);

    /// <summary>PSNETFILTER_NFT_RUNNER=process.</summary>
    public static bool ProcessRequested =>
        string.Equals(Environment.GetEnvironmentVariable("PSNETFILTER_NFT_RUNNER"), "process", StringComparison.OrdinalIgnoreCase);

    /// <summary>Runs <paramref name="script"/> as one transaction: applied whole, or nothing of it when nft refuses a line.</summary>
    public abstract Task<NftRunResult> RunAsync(string script, CancellationToken ct);

    /// <summary>Runs a listing (<c>list ruleset</c>, <c>list table inet NAME</c>...) with JSON output, as <c>nft -j</c>.</summary>
    public abstract Task<NftRunResult> ListJsonAsync(string listCommand, CancellationToken ct);

    /// <summary>Applies <paramref name="script"/> as one transaction and returns what nft printed.</summary>
    /// <exception cref="CommandFailedException">nft refused a line (<see cref="CommandFailedException.FailedLine"/>); nothing was applied.</exception>
    public async Task<string> ApplyAsync(string script, CancellationToken ct) =>
        (await RunAsync(script, ct).ConfigureAwait(false)).EnsureSuccess(script).Output;

    /// <summary>The JSON text of a listing.</summary>
    /// <exception cref="CommandFailedException">nft refused the listing (no such table, say).</exception>
    public async Task<string> ListJsonCheckedAsync(string listCommand, CancellationToken ct) =>
        (await ListJsonAsync(listCommand, ct).ConfigureAwait(false)).EnsureSuccess(listCommand).Output;
}
