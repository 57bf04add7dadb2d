using System.Globalization;

namespace PSNetfilter;

/// <summary>A port or an inclusive port range, written "8080" or "8000-8010".</summary>
public readonly record struct PortRange(int First, int Last)
{
    public bool IsSingle => First == Last;

    public int Count => Last - First + 1;

    /// <summary>Parses "8080", "8000-8010" or "8000:8010".</summary>
    /// <exception cref="PortForwardValidationException">InvalidPort.</exception>
    public static PortRange Parse(string? text)
    {
        var t = text?.Trim() ?? string.Empty;
        var sep = t.IndexOfAny(new[] { '-', ':' });
        var ok = sep < 0
            ? int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            : int.TryParse(t[..sep], NumberStyles.None, CultureInfo.InvariantCulture, out first);
        var last = first;
        if (ok && sep >= 0)
        {
            ok = int.TryParse(t[(sep + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out last);
        }

        if (!ok)
        {
            throw new PortForwardValidationException("InvalidPort", $"'{PortForwardDefinition.Printable(t)}' is not a port or a port range: write 8080 or 8000-8010.", text);
        }

        return Create(first, last);
    }

    /// <exception cref="PortForwardValidationException">InvalidPort.</exception>
    public static PortRange Create(int first, int last)
    {
        if (first is < 1 or > 65535 || last is < 1 or > 65535)
        {
            throw new PortForwardValidationException("InvalidPort", $"Port {(first is < 1 or > 65535 ? first : last)} is out of range. Use ports from 1 to 65535.", first);
        }

        if (last < first)
        {
            throw new PortForwardValidationException("InvalidPort", $"The port range {first}-{last} ends before it starts.", last);
        }

        return new PortRange(first, last);
    }

    public override string ToString() =>
        IsSingle ? First.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{First}-{Last}");
}
