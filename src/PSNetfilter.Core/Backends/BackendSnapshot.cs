namespace PSNetfilter.Core.Backends;

/// <summary>
/// The module's forwards of one namespace as one backend read them, taken under the namespace lock for a
/// change. A backend keeps in its own subclass what it needs to plan against (positions, handles).
/// </summary>
public abstract class BackendSnapshot
{
    /// <summary>Every forward of the namespace, complete or not.</summary>
    public abstract IEnumerable<PortForward> Forwards { get; }
}
