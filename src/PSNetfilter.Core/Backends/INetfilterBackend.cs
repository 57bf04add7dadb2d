using PSNetfilter.Core.Diagnostics;
using PSNetfilter.Core.Engine;

namespace PSNetfilter.Core.Backends;

/// <summary>
/// How forwards are laid out in the kernel: the one seam between the engine (<see cref="PortForwardManager"/>:
/// resolve, decide, record) and a netfilter interface. A backend reads the module's forwards back from the
/// kernel, plans and applies a batch of changes, and says what only it can see for Test-PortForward. It never
/// takes the namespace lock (the engine holds it around every change) and never touches what it does not own.
/// A second backend is a folder beside <c>Backends/Iptables</c> implementing this interface.
/// </summary>
public interface INetfilterBackend
{
    /// <summary>The name users see (Get-PortForward's Backend, -Verbose).</summary>
    string Name { get; }

    /// <summary>
    /// From this many forwards of one namespace on, New-PortForward opens a streamed change
    /// (<see cref="OpenChangeAsync"/> with <c>stream</c>) while the pipeline still arrives.
    /// </summary>
    int StreamFromForwards { get; }

    /// <summary>What a streamed change is written to, for -Verbose ("iptables-restore").</summary>
    string StreamTarget { get; }

    /// <summary>
    /// Reads the module's forwards. <paramref name="needed"/>: families that must be read; the others may be
    /// skipped when the backend can tell cheaply that they hold nothing of the module's.
    /// </summary>
    Task<BackendSnapshot> ReadAsync(IReadOnlyCollection<IpFamily> needed, ReadOptions options, CancellationToken ct);

    /// <summary>
    /// Whether a streamed change can be opened now (the iptables backend: not with iptables-legacy, whose
    /// restore holds the xtables lock for as long as it runs).
    /// </summary>
    Task<bool> CanStreamAsync(CancellationToken ct);

    /// <summary>
    /// Reads a snapshot (as <see cref="ReadAsync"/>) and opens a change on it, under the namespace lock the
    /// caller holds. <paramref name="adding"/>: the forwards the change will add when it may apply them (null
    /// for -WhatIf), so that the backend can start its work (processes) alongside the read.
    /// </summary>
    Task<IBackendChange> OpenChangeAsync(IReadOnlyCollection<PortForwardDefinition>? adding, bool stream, ReadOptions options, CancellationToken ct);

    /// <summary>The findings only this backend can make (its own rule layout, rules of other programs in its tables).</summary>
    Task<IReadOnlyList<PortForwardFinding>> CheckAsync(BackendSnapshot snapshot, IReadOnlyList<PortForward> forwards, CancellationToken ct);
}
