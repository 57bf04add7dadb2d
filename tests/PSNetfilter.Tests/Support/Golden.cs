using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests.Support;

/// <summary>The golden iptables-save dumps copied to the test output folder.</summary>
internal static class Golden
{
    public static readonly string[] Backends = { "nft", "legacy" };

    public static readonly string[] Files =
    {
        "foreign-only.v4.save",
        "foreign-only.v6.save",
        "owned.v4.save",
        "owned.v6.save",
        "owned-drift.v4.save",
        "owned-only.v4.save",
    };

    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Golden");

    public static string Read(string backend, string file) => File.ReadAllText(Path.Combine(Dir, backend, file));

    public static IpFamily FamilyOf(string file) => file.Contains(".v6.", StringComparison.Ordinal) ? IpFamily.IPv6 : IpFamily.IPv4;

    public static Ruleset Parse(string backend, string file) => IptablesSaveParser.Parse(Read(backend, file), FamilyOf(file));

    /// <summary>Every (backend, file) pair, for [MemberData].</summary>
    public static IEnumerable<object[]> All() =>
        from b in Backends from f in Files select new object[] { b, f };

    public static IEnumerable<object[]> BackendsData() => Backends.Select(b => new object[] { b });
}
