using System.Text;
using System.Text.Json;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests.Host;

/// <summary>
/// nft in a namespace in-process (libnftables on the setns thread) and as a process (nft through the host's
/// funnel), against the real kernel in psnfL-* namespaces: the same ruleset, the same failure with the same refused
/// line, one transaction, the right namespace, JSON listings, and no leak over hundreds of runs.
/// </summary>
[Collection(AloneCollection.Name)]
public class NftRunnerTests
{
    public static readonly TheoryData<string> Paths = new() { "in-process", "process" };

    /// <summary>A table with a DNAT map and a SNAT set, and <paramref name="count"/> forwards' elements in each.</summary>
    internal static string ForwardsScript(string table, int count, int firstPort = 10001)
    {
        var s = new StringBuilder();
        s.Append("add table inet ").Append(table).Append('\n');
        s.Append("add map inet ").Append(table).Append(" dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }\n");
        s.Append("add set inet ").Append(table).Append(" snat4 { type ipv4_addr . inet_service; }\n");
        var ports = Enumerable.Range(firstPort, count).ToList();
        s.Append("add element inet ").Append(table).Append(" dnat4 { ")
            .AppendJoin(", ", ports.Select(p => $"203.0.113.1 . tcp . {p} : 198.51.100.10 . {p}")).Append(" }\n");
        s.Append("add element inet ").Append(table).Append(" snat4 { ")
            .AppendJoin(", ", ports.Select(p => $"198.51.100.10 . {p}")).Append(" }\n");
        return s.ToString();
    }

    [NftFact]
    public async Task A_good_script_gives_the_same_ruleset_on_both_paths()
    {
        using var inProcess = new NftTestNamespace();
        using var process = new NftTestNamespace();
        var script = ForwardsScript("psnftest", 50);

        var a = await inProcess.Runner("in-process").RunAsync(script, CancellationToken.None);
        var b = await process.Runner("process").RunAsync(script, CancellationToken.None);

        Assert.True(a.Success, a.Error);
        Assert.True(b.Success, b.Error);
        Assert.Equal((a.Output, a.Error), (b.Output, b.Error));
        var ruleset = inProcess.Ruleset();
        Assert.Contains("203.0.113.1 . tcp . 10050 : 198.51.100.10 . 10050", ruleset, StringComparison.Ordinal);
        Assert.Equal(process.Ruleset(), ruleset);
    }

    /// <summary>A syntax error, an error nft finds against the kernel's state before sending, and one the kernel refuses.</summary>
    public static readonly TheoryData<string, string, int> BadScripts = new()
    {
        { "syntax", "add rule inet psnftest nochain bogus thing", 4 },
        { "no such set", "add element inet psnftest nosuchset { 198.51.100.10 . 1 }", 4 },
        { "kernel refuses", "create element inet psnftest snat4 { 198.51.100.10 . 10001 }", 4 },
    };

    [NftTheory]
    [MemberData(nameof(BadScripts))]
    public async Task A_refused_line_is_the_same_failure_with_its_line_on_both_paths(string kind, string badLine, int expectedLine)
    {
        using var inProcess = new NftTestNamespace();
        using var process = new NftTestNamespace();
        var script = ForwardsScript("psnftest", 1).TrimEnd('\n').Split('\n')[0] + "\n"
            + "add set inet psnftest snat4 { type ipv4_addr . inet_service; }\n"
            + "add element inet psnftest snat4 { 198.51.100.10 . 10001 }\n"
            + badLine + "\n";

        var a = await Assert.ThrowsAsync<CommandFailedException>(() => inProcess.Runner("in-process").ApplyAsync(script, CancellationToken.None));
        var b = await Assert.ThrowsAsync<CommandFailedException>(() => process.Runner("process").ApplyAsync(script, CancellationToken.None));

        Assert.True(a.FailedLine == expectedLine, $"{kind}: in-process named line {a.FailedLine}: {a.StandardError}");
        Assert.True(b.FailedLine == expectedLine, $"{kind}: the process named line {b.FailedLine}: {b.StandardError}");
        Assert.Equal(badLine, a.FailedInput);
        Assert.Equal(badLine, b.FailedInput);
        Assert.Equal(b.ExitCode, a.ExitCode);
        Assert.Contains("Error:", a.StandardError, StringComparison.Ordinal);
        Assert.Equal(NftRunResult.WithoutSource(b.StandardError), NftRunResult.WithoutSource(a.StandardError));
        Assert.StartsWith("libnftables", a.Command, StringComparison.Ordinal);
        Assert.Contains("nft -f -", b.Command, StringComparison.Ordinal);
    }

    [NftTheory]
    [MemberData(nameof(Paths))]
    public async Task A_transaction_whose_last_line_is_refused_leaves_nothing_of_its_earlier_lines(string path)
    {
        using var ns = new NftTestNamespace();
        var runner = ns.Runner(path);
        await runner.ApplyAsync(ForwardsScript("psnftest", 1), CancellationToken.None);
        var before = ns.Ruleset();

        // 200 new forwards' elements, a new table, then a line the kernel refuses (the element exists).
        var script = ForwardsScript("psnftest", 200, firstPort: 20001)
            + "add table inet psnftest2\n"
            + "create element inet psnftest snat4 { 198.51.100.10 . 10001 }\n";
        var ex = await Assert.ThrowsAsync<CommandFailedException>(() => runner.ApplyAsync(script, CancellationToken.None));

        Assert.Equal(script.Split('\n').Length - 1, ex.FailedLine);
        Assert.Contains("File exists", ex.StandardError, StringComparison.Ordinal);
        Assert.Equal(before, ns.Ruleset());
    }

    [NftTheory]
    [MemberData(nameof(Paths))]
    public async Task A_change_lands_in_the_target_namespace_and_not_in_the_hosts(string path)
    {
        using var ns = new NftTestNamespace();
        var table = "psnfL" + NftTestNamespace.RandomHex();

        await ns.Runner(path).ApplyAsync($"add table inet {table}\nadd set inet {table} s {{ type ipv4_addr; }}\n", CancellationToken.None);

        Assert.Contains($"table inet {table}", Sh.Check("ip", "netns", "exec", ns.Name, "nft", "list", "tables"), StringComparison.Ordinal);
        Assert.DoesNotContain(table, Sh.Check("nft", "list", "tables"), StringComparison.Ordinal);
    }

    [NftFact]
    public async Task A_listing_in_json_is_the_same_on_both_paths()
    {
        using var ns = new NftTestNamespace();
        await ns.Runner("in-process").ApplyAsync(ForwardsScript("psnftest", 3), CancellationToken.None);

        var a = await ns.Runner("in-process").ListJsonCheckedAsync("list table inet psnftest", CancellationToken.None);
        var b = await ns.Runner("process").ListJsonCheckedAsync("list table inet psnftest", CancellationToken.None);

        var items = JsonDocument.Parse(a).RootElement.GetProperty("nftables").EnumerateArray().ToList();
        var set = Assert.Single(items, i => i.TryGetProperty("set", out _)).GetProperty("set");
        Assert.Equal("snat4", set.GetProperty("name").GetString());
        Assert.Equal(3, set.GetProperty("elem").GetArrayLength());
        Assert.Single(items, i => i.TryGetProperty("map", out var m) && m.GetProperty("elem").GetArrayLength() == 3);
        Assert.Equal(JsonDocument.Parse(b).RootElement.GetRawText(), JsonDocument.Parse(a).RootElement.GetRawText());
    }

    [NftTheory]
    [MemberData(nameof(Paths))]
    public async Task A_listing_of_a_missing_table_is_a_failure(string path)
    {
        using var ns = new NftTestNamespace();

        var ex = await Assert.ThrowsAsync<CommandFailedException>(() => ns.Runner(path).ListJsonCheckedAsync("list table inet psnfnosuch", CancellationToken.None));

        Assert.Contains("No such file or directory", ex.StandardError, StringComparison.Ordinal);
    }

    [NftFact]
    public async Task Hundreds_of_in_process_runs_leave_no_socket_memory_or_thread_behind()
    {
        using var ns = new NftTestNamespace();
        var runner = ns.Runner("in-process");
        await runner.ApplyAsync(ForwardsScript("psnftest", 20), CancellationToken.None);
        async Task Round(int i)
        {
            var port = 30000 + i;
            await runner.ApplyAsync($"add element inet psnftest snat4 {{ 198.51.100.10 . {port} }}\n", CancellationToken.None);
            await runner.ListJsonCheckedAsync("list set inet psnftest snat4", CancellationToken.None);
            await runner.ApplyAsync($"delete element inet psnftest snat4 {{ 198.51.100.10 . {port} }}\n", CancellationToken.None);
        }

        for (var i = 0; i < 100; i++)
        {
            await Round(i); // warm: the library's one-time allocations, the JIT
        }

        // Three windows of 100 rounds (300 runs each). A leak grows the heap in every window; a one-time allocation
        // of the runtime (tiered JIT of this code, which a loaded machine delays into the measurement) in one.
        var sockets = await NetfilterSockets(ns.Name);
        var growths = new List<long>();
        for (var w = 0; w < 3; w++)
        {
            var heap = NativeHeapBytes();
            for (var i = 0; i < 100; i++)
            {
                await Round(w * 100 + i);
            }

            growths.Add(NativeHeapBytes() - heap);
        }

        // 900 contexts made and freed: each opens a netlink socket in the namespace, and each script is a memfd.
        // Other test classes run in parallel in this process, so the checks look at what is ours: the namespace's
        // sockets, our memfds, and malloc's bytes in use (not the resident size, which the runtime's heap moves).
        Assert.Equal(sockets, await NetfilterSockets(ns.Name));
        Assert.DoesNotContain(Directory.GetFiles("/proc/self/fd"), fd => new FileInfo(fd).LinkTarget?.Contains("psnetfilter-nft", StringComparison.Ordinal) == true);
        Assert.True(growths.Min() < 3L << 20, $"malloc's bytes in use grew in every window of 300 runs: {string.Join(", ", growths.Select(g => g / 1024 + " kB"))}");
        // A thread left inside this test's namespace (other test classes enter namespaces of their own meanwhile).
        var ours = await NamespaceThread.RunAsync(ns.Name, () => new FileInfo("/proc/thread-self/ns/net").LinkTarget);
        var strays = Directory.GetDirectories("/proc/self/task").Where(t => TaskNamespace(t) == ours).ToList();
        Assert.Empty(strays);
        Assert.DoesNotContain("198.51.100.10 . 30000", ns.Ruleset(), StringComparison.Ordinal);
    }

    /// <summary>The NETLINK_NETFILTER sockets open in the namespace (protocol 12 in its /proc/net/netlink).</summary>
    private static async Task<int> NetfilterSockets(string networkNamespace)
    {
        var table = await NamespaceThread.ReadFileAsync(networkNamespace, "/proc/thread-self/net/netlink");
        return table.Split('\n').Skip(1).Count(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, "12", ..]);
    }

    /// <summary>Bytes glibc's malloc has handed out and not had back, in every arena and mmap'd block.</summary>
    private static long NativeHeapBytes()
    {
        var info = mallinfo2();
        return (long)(info.Uordblks + info.Hblkhd);
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern MallInfo2 mallinfo2();

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena;
        public nuint Ordblks;
        public nuint Smblks;
        public nuint Hblks;
        public nuint Hblkhd;
        public nuint Usmblks;
        public nuint Fsmblks;
        public nuint Uordblks;
        public nuint Fordblks;
        public nuint Keepcost;
    }

    private static string? TaskNamespace(string task)
    {
        try
        {
            return new FileInfo(Path.Combine(task, "ns/net")).LinkTarget;
        }
        catch (IOException)
        {
            return null; // the thread ended meanwhile
        }
    }
}
