
namespace PSNetfilter.Core.Host;

/// <summary>
/// nft through libnftables in this process, inside the namespace: each call runs on a fresh thread that entered
/// the namespace with setns (<see cref="NamespaceThread"/>), where the library's context, and with it its netlink
/// socket, is made, used and freed. No process is started.
/// </summary>
/// <remarks>
/// The token is checked before a run starts; a run that has started finishes (a transaction is never cut off
/// half-way: the kernel applies it whole or not at all either way). A run costs a thread, two setns calls and a
/// libnftables context (see bench/nft-inprocess.ps1 for the fixed cost against a whole transaction).
/// </remarks>
public sealed class InProcessNftRunner : NftRunner
{
    private readonly Action<string> _log;

    /// <exception cref="NetfilterException">InvalidNetworkNamespace.</exception>
    public InProcessNftRunner(string? networkNamespace, Action<string>? log = null)
        : base(networkNamespace)
    {
        _log = log ?? (_ => { });
    }

    public override bool InProcess => true;

    public override Task<NftRunResult> RunAsync(string script, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        _log("nft input (libnftables):\n" + script.TrimEnd('\n'));
        return NamespaceThread.RunAsync(NetworkNamespace, () => Libnftables.Run(script, json: false));
    }

    public override Task<NftRunResult> ListJsonAsync(string listCommand, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        _log("Running (libnftables): nft -j " + listCommand);
        return NamespaceThread.RunAsync(NetworkNamespace, () => Libnftables.Run(listCommand, json: true));
    }
}
