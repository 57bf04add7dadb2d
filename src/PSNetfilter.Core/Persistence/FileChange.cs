using System.Text;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Core.Persistence;

/// <summary>What installing does to one file.</summary>
public enum FileChange
{
    Unchanged,
    Created,
    Updated,
    Removed,
}
