
namespace PSNetfilter.Core.Host;

/// <summary>
/// nft as a process, the fallback when libnftables is not available: <c>nft -f -</c> through
/// <see cref="NetfilterHost.ApplyNftScriptAsync"/> and <c>nft -j list ...</c> through
/// <see cref="NetfilterHost.RunCheckedAsync"/>, so the host's funnel enters the namespace (nsenter), logs, and maps a
/// missing tool as for every other process. A refusal comes back as the same <see cref="NftRunResult"/> as in-process.
/// </summary>
public sealed class ProcessNftRunner : NftRunner
{
    private readonly NetfilterHost _host;

    public ProcessNftRunner(NetfilterHost host)
        : base(host.NetworkNamespace)
    {
        _host = host;
    }

    public override bool InProcess => false;

    public override async Task<NftRunResult> RunAsync(string script, CancellationToken ct)
    {
        try
        {
            await _host.ApplyNftScriptAsync(script, ct).ConfigureAwait(false);
            return new NftRunResult(true, string.Empty, string.Empty) { Command = Display("-f", "-") };
        }
        catch (CommandFailedException ex)
        {
            return Refused(ex);
        }
    }

    public override async Task<NftRunResult> ListJsonAsync(string listCommand, CancellationToken ct)
    {
        var args = new List<string> { "-j" };
        args.AddRange(listCommand.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        try
        {
            var result = await _host.RunCheckedAsync(new ProcessRequest(Nft(), args), ct).ConfigureAwait(false);
            return new NftRunResult(true, result.StandardOutput, result.StandardError) { Command = Display(args.ToArray()) };
        }
        catch (CommandFailedException ex)
        {
            return Refused(ex);
        }
    }

    private static NftRunResult Refused(CommandFailedException ex) =>
        new(false, string.Empty, ex.StandardError) { Command = ex.Command, ExitCode = ex.ExitCode };

    private static string Nft() => ExecutableLocator.Require("nft", "nftables");

    private string Display(params string[] args) => _host.Wrap(new ProcessRequest(Nft(), args)).Display;
}
