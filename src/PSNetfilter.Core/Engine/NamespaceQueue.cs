using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// A pipeline's items grouped by network namespace (null: the host's own), in the order each namespace first
/// appeared: a command applies one change per namespace when its pipeline ends.
/// </summary>
public sealed class NamespaceQueue<T>
{
    private readonly Dictionary<string, List<T>> _items = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();
    private readonly bool _checkExists;

    /// <param name="checkExists">Check that a named namespace exists when it first appears (NetworkNamespaceNotFound).</param>
    public NamespaceQueue(bool checkExists = true)
    {
        _checkExists = checkExists;
    }

    /// <summary>Adds <paramref name="item"/> to the items of <paramref name="networkNamespace"/>, and returns them.</summary>
    /// <exception cref="NetfilterException">InvalidNetworkNamespace, NetworkNamespaceNotFound.</exception>
    public List<T> Add(string? networkNamespace, T item)
    {
        var ns = NetworkNamespaceName.Check(networkNamespace);
        var key = ns ?? string.Empty;
        if (!_items.TryGetValue(key, out var list))
        {
            if (ns is not null && _checkExists)
            {
                SystemChecks.ValidateNetworkNamespace(ns); // once per namespace and command
            }

            _items[key] = list = new List<T>();
            _order.Add(key);
        }

        list.Add(item);
        return list;
    }

    /// <summary>The namespaces in the order they first appeared, with their items.</summary>
    public IEnumerable<(string? Namespace, List<T> Items)> InOrder() =>
        _order.Select(key => (key.Length == 0 ? (string?)null : key, _items[key]));
}
