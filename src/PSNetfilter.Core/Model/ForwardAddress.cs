using System.Net;

namespace PSNetfilter;

/// <summary>
/// The IPAddress a forward shows. It is an <see cref="IPAddress"/> in every respect, plus a real
/// <see cref="IPAddressToString"/> property: PowerShell's ETS property of that name is lost when
/// ConvertTo-Json writes a nested object, and an IPv6 address would then come back from JSON with no value.
/// <see cref="Parse(string)"/> lets PowerShell compare it with a string (<c>InternalAddress -eq '192.0.2.10'</c>).
/// </summary>
public sealed class ForwardAddress : IPAddress
{
    private ForwardAddress(IPAddress address)
        : base(address.GetAddressBytes())
    {
    }

    /// <summary>The address as text, as a CLR property so that serialisers keep it.</summary>
    public string IPAddressToString => ToString();

    public static new ForwardAddress Parse(string text) => new(IPAddress.Parse(text));

    internal static ForwardAddress? From(IPAddress? address) =>
        address switch
        {
            null => null,
            ForwardAddress f => f,
            _ => new ForwardAddress(address),
        };
}
