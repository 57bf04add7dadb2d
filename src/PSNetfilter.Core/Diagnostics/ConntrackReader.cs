using System.Net;

namespace PSNetfilter.Core.Diagnostics;

/// <summary>Reads <c>conntrack -L</c> lines: which connections of a forward never saw a reply.</summary>
public static class ConntrackReader
{
    /// <summary>
    /// Counts [UNREPLIED] entries whose original direction goes to the forward's external endpoint and whose
    /// reply direction comes from its internal endpoint (that is, DNATed by it).
    /// </summary>
    public static int CountUnreplied(string conntrackList, PortForward f)
    {
        var count = 0;
        foreach (var line in conntrackList.Split('\n'))
        {
            if (!line.Contains("[UNREPLIED]", StringComparison.Ordinal))
            {
                continue;
            }

            var proto = f.Protocol == Protocol.Tcp ? "tcp" : "udp";
            if (!line.StartsWith(proto, StringComparison.Ordinal))
            {
                continue;
            }

            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var dst = fields.Where(x => x.StartsWith("dst=", StringComparison.Ordinal)).Select(x => x[4..]).ToList();
            var dport = fields.Where(x => x.StartsWith("dport=", StringComparison.Ordinal)).Select(x => x[6..]).ToList();
            var src = fields.Where(x => x.StartsWith("src=", StringComparison.Ordinal)).Select(x => x[4..]).ToList();
            if (dst.Count < 2 || dport.Count < 1 || src.Count < 2 || !int.TryParse(dport[0], out var port))
            {
                continue;
            }

            var externalOk = f.ExternalAddress is null || (IPAddress.TryParse(dst[0], out var d) && d.Equals(f.ExternalAddress));
            var internalOk = IPAddress.TryParse(src[1], out var s) && s.Equals(f.InternalAddress);
            if (externalOk && internalOk && port >= f.ExternalPort && port <= f.ExternalPortEnd)
            {
                count++;
            }
        }

        return count;
    }
}
