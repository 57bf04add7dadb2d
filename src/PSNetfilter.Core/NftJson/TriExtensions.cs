namespace PSNetfilter.Core.NftJson;

internal static class TriExtensions
{
    public static Tri And(this Tri a, Tri b) =>
        a == Tri.False || b == Tri.False ? Tri.False : (a == Tri.True && b == Tri.True ? Tri.True : Tri.Unknown);

    public static Tri Or(this Tri a, Tri b) =>
        a == Tri.True || b == Tri.True ? Tri.True : (a == Tri.False && b == Tri.False ? Tri.False : Tri.Unknown);

    public static Tri Not(this Tri a) => a switch { Tri.True => Tri.False, Tri.False => Tri.True, _ => Tri.Unknown };
}
