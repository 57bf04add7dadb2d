using System.Diagnostics;
using System.Globalization;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// Where a change spends its time, for the "Timing:" lines of -Debug (docs/PERFORMANCE.md reads them): elapsed
/// milliseconds between two <see cref="Stopwatch.GetTimestamp"/> values. Nothing decides anything on a time.
/// </summary>
public static class Timing
{
    public static string Ms(long from, long to) =>
        Stopwatch.GetElapsedTime(from, to).TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture) + " ms";

    public static string Ms(long from) => Ms(from, Stopwatch.GetTimestamp());
}
