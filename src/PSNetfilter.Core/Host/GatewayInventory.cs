using System.Net;
using System.Text.Json;

namespace PSNetfilter.Core.Host;

/// <summary>
/// The gateway's interfaces and their addresses, as one <c>ip -j addr show</c> of the namespace lists them
/// (every link appears, with or without addresses).
/// </summary>
public sealed class GatewayInventory
{
    public GatewayInventory(IReadOnlyList<string> interfaces, IReadOnlyList<(string Device, IPAddress Address, int Prefix)> addresses)
    {
        Interfaces = interfaces;
        Addresses = addresses;
    }

    public IReadOnlyList<string> Interfaces { get; }

    public IReadOnlyList<(string Device, IPAddress Address, int Prefix)> Addresses { get; }

    /// <summary>The interface that holds <paramref name="address"/>, or null (no address, or not one of the gateway's).</summary>
    public string? DeviceOf(IPAddress? address) =>
        address is null ? null : Addresses.Where(a => a.Address.Equals(address)).Select(a => a.Device).FirstOrDefault();

    /// <summary>Parses the JSON of <c>ip -j addr show</c>.</summary>
    /// <exception cref="NetfilterException">InvalidData: the text is not that JSON.</exception>
    public static GatewayInventory Parse(string json)
    {
        var interfaces = new List<string>();
        var addresses = new List<(string, IPAddress, int)>();
        try
        {
            using var doc = JsonDocument.Parse(json);
            foreach (var link in doc.RootElement.EnumerateArray())
            {
                var dev = link.TryGetProperty("ifname", out var n) ? n.GetString() : null;
                if (dev is null)
                {
                    continue;
                }

                interfaces.Add(dev);
                if (!link.TryGetProperty("addr_info", out var infos))
                {
                    continue;
                }

                foreach (var info in infos.EnumerateArray())
                {
                    if (info.TryGetProperty("local", out var l) && IPAddress.TryParse(l.GetString(), out var a) && info.TryGetProperty("prefixlen", out var p))
                    {
                        addresses.Add((dev, a, p.GetInt32()));
                    }
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw new NetfilterException("UnexpectedToolOutput", FailureKind.InvalidData, $"'ip -j addr show' printed something that is not its JSON list of interfaces: {ex.Message}", null, ex);
        }

        return new GatewayInventory(interfaces, addresses);
    }

    public bool HasAddress(IPAddress address) => Addresses.Any(a => a.Address.Equals(address));

    /// <summary>Whether an interface of that name exists; a name ending in '+' (an iptables prefix) matches any interface it starts.</summary>
    public bool HasInterface(string name) =>
        name.EndsWith('+')
            ? Interfaces.Any(i => i.StartsWith(name[..^1], StringComparison.Ordinal))
            : Interfaces.Contains(name, StringComparer.Ordinal);
}
