using System.Diagnostics;
using static PSNetfilter.Core.Engine.Timing;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// The adds of one New-PortForward pipeline. Requests are queued per namespace and applied when the pipeline
/// ends, one change per namespace. Once a namespace has <see cref="PortForwardManager.StreamFromForwards"/>
/// requests, the change is opened at once and streamed: each further forward is resolved and planned as it
/// arrives and handed to the backend, which applies the whole change when the pipeline ends (nothing earlier).
/// A stream is not opened with -WhatIf or -Confirm, nor when the namespace lock is taken or the backend
/// cannot stream.
/// </summary>
public sealed class AddPipeline : IDisposable
{
    private readonly Func<string?, PortForwardManager> _managerFor;
    private readonly ICmdletThread _thread;
    private readonly IChangeObserver _observer;
    private readonly bool _force;
    private readonly bool _mayStream;
    private readonly bool _whatIf;
    private readonly NamespaceQueue<PortForwardRequest> _queue = new();
    private readonly Dictionary<string, List<PortForwardDefinition>> _resolved = new(StringComparer.Ordinal);
    private Stream? _stream;
    private bool _streamTried;
    private int? _streamFrom;

    /// <param name="whatIf">-WhatIf: nothing is started for the forwards, and nothing streams.</param>
    /// <param name="confirm">-Confirm: every item is asked about when the pipeline ends, so nothing streams.</param>
    public AddPipeline(Func<string?, PortForwardManager> managerFor, ICmdletThread thread, IChangeObserver observer, bool force, bool whatIf, bool confirm)
    {
        _managerFor = managerFor;
        _thread = thread;
        _observer = observer;
        _force = force;
        _whatIf = whatIf;
        _mayStream = !whatIf && !confirm;
    }

    /// <summary>Queues one validated request; may open the stream, or plan it into a running one.</summary>
    /// <exception cref="NetfilterException">InvalidNetworkNamespace, NetworkNamespaceNotFound; a failure to open the stream.</exception>
    public void Add(string? networkNamespace, PortForwardRequest request)
    {
        var list = _queue.Add(networkNamespace, request);
        var key = networkNamespace ?? string.Empty;
        if (_stream is not null && _stream.Key == key)
        {
            StreamLast(list);
        }
        else if (!_streamTried && _mayStream && list.Count >= (_streamFrom ??= _managerFor(null).StreamFromForwards))
        {
            _streamTried = true;
            StartStream(key, list);
        }
    }

    /// <summary>
    /// Applies each namespace's change, in the order the namespaces first appeared, and yields its results once
    /// its lock is released (so that a command further down the pipeline may take it).
    /// </summary>
    public IEnumerable<(PortForwardManager Manager, IReadOnlyList<ChangeResult> Results)> Finish()
    {
        foreach (var (ns, requests) in _queue.InOrder())
        {
            var key = ns ?? string.Empty;
            var streamed = _stream is not null && _stream.Key == key ? _stream : null;
            var manager = streamed?.Manager ?? _managerFor(ns);
            var definitions = _resolved.TryGetValue(key, out var early) ? early : new List<PortForwardDefinition>();
            var started = Stopwatch.GetTimestamp();

            // Without a stream, the gateway's interfaces are read while the change opens (lock, rules, sysctls),
            // and the warnings about them come before anything is planned.
            var fresh = _thread.Run(ct => streamed is null ? manager.ResolveUncheckedAsync(requests, ct) : manager.ResolveAsync(requests, ct));
            definitions.AddRange(fresh);
            var resolved = Stopwatch.GetTimestamp();
            IReadOnlyList<ChangeResult> results;
            if (streamed is not null)
            {
                // The forwards that arrived while the change streamed are with the backend already.
                try
                {
                    manager.PlanAdds(streamed.Session, definitions, _force);
                    _thread.Flush();
                    results = _thread.Run(ct => manager.CommitAsync(streamed.Session, ct));
                }
                finally
                {
                    _stream = null;
                    streamed.Session.Dispose();
                }
            }
            else
            {
                if (definitions.Count == 0)
                {
                    _thread.Run(ct => manager.CheckResolvedAsync(fresh, ct));
                    continue;
                }

                using var session = _thread.Run(ct => manager.OpenAsync(ct, readForwarding: true, adding: _whatIf ? null : definitions));
                _thread.Run(ct => manager.CheckResolvedAsync(fresh, ct));
                var opened = Stopwatch.GetTimestamp();
                manager.PlanAdds(session, definitions, _force);
                _thread.Flush();
                var planned = Stopwatch.GetTimestamp();
                results = _thread.Run(ct => manager.CommitAsync(session, ct));
                _observer.Debug($"Timing: {requests.Count} request(s): resolved in {Ms(started, resolved)}, lock and read {Ms(resolved, opened)}, planned in {Ms(opened, planned)}, committed in {Ms(planned)}.");
                _thread.Flush();
            }

            yield return (manager, results);
        }
    }

    /// <summary>Abandons a stream the pipeline did not finish (stopped, or failed): nothing of it is applied.</summary>
    public void Dispose()
    {
        var streamed = _stream;
        _stream = null;
        streamed?.Session.Dispose();
    }

    private void StartStream(string key, List<PortForwardRequest> list)
    {
        var manager = _managerFor(key.Length == 0 ? null : key);
        var definitions = _thread.Run(ct => manager.ResolveAsync(list, ct));
        list.Clear();
        if (definitions.Count == 0)
        {
            _resolved[key] = definitions; // nothing to stream yet (every forward so far was refused): the end decides
            return;
        }

        ChangeSession? session = null;
        try
        {
            session = _thread.Run(ct => manager.TryOpenStreamingAsync(definitions, ct));
            if (session is null)
            {
                _observer.Verbose($"The namespace lock is taken or the {manager.Backend.Name} backend cannot stream here (iptables-legacy cannot): the forwards are applied when the pipeline ends.");
                _resolved[key] = definitions;
                return;
            }

            _observer.Verbose($"{definitions.Count} forwards piped so far: the change streams to {manager.Backend.StreamTarget} from here on, and the namespace stays locked until the pipeline ends.");
            _stream = new Stream(key, manager, session);
            manager.PlanAdds(session, definitions, _force);
            _thread.Flush();
        }
        catch (NetfilterException)
        {
            _stream = null;
            session?.Dispose();
            throw;
        }
    }

    /// <summary>Plans the request just queued into the stream, unless resolving it needs a process (it then waits for the end, as do all after it).</summary>
    private void StreamLast(List<PortForwardRequest> list)
    {
        var stream = _stream!;
        var request = list[^1];
        if (stream.Deferring || !stream.Manager.CanResolveWithoutProcesses(request))
        {
            stream.Deferring = true;
            return;
        }

        list.RemoveAt(list.Count - 1);
        var definitions = _thread.Run(ct => stream.Manager.ResolveAsync(new[] { request }, ct));
        stream.Manager.PlanAdds(stream.Session, definitions, _force);
        _thread.Flush();
    }

    private sealed class Stream(string key, PortForwardManager manager, ChangeSession session)
    {
        public string Key { get; } = key;

        public PortForwardManager Manager { get; } = manager;

        public ChangeSession Session { get; } = session;

        public bool Deferring { get; set; }
    }
}
