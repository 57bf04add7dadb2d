using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Engine;

/// <summary>The conntrack entries of removed or replaced UDP forwards, deleted after a change (<see cref="ConntrackFilter"/>).</summary>
public sealed class StaleFlows
{
    private readonly NetfilterHost _host;
    private readonly IChangeObserver _observer;

    public StaleFlows(NetfilterHost host, IChangeObserver observer)
    {
        _host = host;
        _observer = observer;
    }

    /// <summary>
    /// Deletes the conntrack entries of removed or replaced UDP forwards (one <c>conntrack -D</c> each), after the
    /// change is applied, so that a running UDP stream follows the new rules at its next datagram instead of
    /// keeping its old translation until it has been idle for the UDP timeout. TCP connections are left alone
    /// (docs/ARCHITECTURE.md says why). Never fails the change: the rules are in already.
    /// </summary>
    public async Task ClearAsync(IReadOnlyList<PortForward> old)
    {
        foreach (var f in old)
        {
            try
            {
                var deleted = await _host.DeleteConntrackAsync(ConntrackFilter.DeleteArguments(f), CancellationToken.None).ConfigureAwait(false);
                if (deleted is null)
                {
                    _observer.Warning($"conntrack(8) is not installed, so the UDP flows that '{f.Name}' translated are not cut: a client that keeps sending reaches {f.InternalEndpoint} until it pauses for the UDP conntrack timeout (30 s, or 120 s once the server answered). Install it (apt-get install conntrack) so that Remove-PortForward and New-PortForward -Force cut them at once, or delete them now: conntrack -D {string.Join(' ', ConntrackFilter.DeleteArguments(f))}.");
                    return;
                }

                if (deleted > 0)
                {
                    _observer.Verbose($"Deleted {deleted} conntrack entr{(deleted == 1 ? "y" : "ies")} of '{f.Name}' (UDP flows to {f.InternalEndpoint}): their next datagram follows the new rules.");
                }
            }
            catch (NetfilterException ex)
            {
                _observer.Warning($"The UDP flows that '{f.Name}' translated could not be cut; a client that keeps sending reaches {f.InternalEndpoint} until it pauses for the UDP conntrack timeout: {ex.Message}");
            }
        }
    }
}
