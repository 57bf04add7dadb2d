namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// The dispatch paths of one batch, by hook, protocol and the bucket a port range falls into: the forwards of a
/// batch that share a leaf share its path, so a batch of 1000 renders about 70 paths instead of 3000.
/// </summary>
public sealed class DispatchPathCache
{
    private readonly Dictionary<(ChainHook Hook, Protocol Protocol, int Depth, int Bucket), IReadOnlyList<DispatchStep>> _paths = new();

    public IReadOnlyList<DispatchStep> Get(ChainHook hook, Protocol protocol, int low, int high)
    {
        var depth = RuleLayout.DispatchDepth(low, high);
        var key = (hook, protocol, depth, depth == 0 ? 0 : low >> (16 - (4 * depth)));
        if (!_paths.TryGetValue(key, out var path))
        {
            _paths[key] = path = RuleLayout.PathTo(hook, protocol, low, high);
        }

        return path;
    }
}
