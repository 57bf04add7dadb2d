using System.Net;
using System.Net.Sockets;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

/// <summary>
/// The setns helper thread, against real namespaces (psnfx-*): it sees the namespace it entered, and no other
/// thread of a fresh process ends up in that namespace. Traffic only to the loopback of the test's own namespace.
/// </summary>
public class NamespaceThreadTests
{
    [RootFact]
    public async Task Reads_proc_as_the_namespace_sees_it()
    {
        using var ns = new TestNamespace();
        ns.Exec("ip", "link", "add", "psnfxdum0", "type", "veth", "peer", "name", "psnfxdum1");

        var inside = await NamespaceThread.ReadFileAsync(ns.Name, "/proc/thread-self/net/dev");
        var outside = await NamespaceThread.ReadFileAsync(null, "/proc/thread-self/net/dev");

        Assert.Contains("psnfxdum0:", inside, StringComparison.Ordinal);
        Assert.DoesNotContain("psnfxdum0:", outside, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllText("/proc/thread-self/net/dev").Split('\n').Length, outside.Split('\n').Length);
    }

    [RootFact]
    public async Task Connects_inside_the_namespace_only()
    {
        using var ns = new TestNamespace();
        ns.Exec("ip", "link", "set", "lo", "up");
        // A new namespace copies IPv4 forwarding from the host: give it the opposite of the host's value, so the
        // probe's read shows it was made inside the namespace, whatever the host has.
        var hostForwarding = File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim();
        var inside = hostForwarding == "0" ? "1" : "0";
        ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=" + inside);
        var port = FreePortInside(ns, out var listener);
        using (listener)
        {
            Assert.True(await NamespaceThread.CanConnectAsync(ns.Name, new IPEndPoint(IPAddress.Loopback, port), TimeSpan.FromSeconds(2)));
        }

        // Closed now: the namespace's loopback refuses at once.
        Assert.False(await NamespaceThread.CanConnectAsync(ns.Name, new IPEndPoint(IPAddress.Loopback, port), TimeSpan.FromSeconds(2)));
    }

    [RootFact]
    public void No_thread_of_a_fresh_process_is_left_in_the_namespace()
    {
        // A fresh process: its first socket starts the runtime's socket engine, its first completed task the
        // thread pool. Any thread started from the helper while inside the namespace would stay there.
        using var ns = new TestNamespace();
        ns.Exec("ip", "link", "set", "lo", "up");
        // A new namespace copies IPv4 forwarding from the host: give it the opposite of the host's value, so the
        // probe's read shows it was made inside the namespace, whatever the host has.
        var hostForwarding = File.ReadAllText("/proc/sys/net/ipv4/ip_forward").Trim();
        var inside = hostForwarding == "0" ? "1" : "0";
        ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=" + inside);
        var port = FreePortInside(ns, out var listener);
        using var _ = listener;
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var output = Sh.Check(dotnet, "exec", typeof(ProbeProgram).Assembly.Location, "--netns-threads", ns.Name, port.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains($"read {inside} connected True", lines);
        var home = Assert.Single(lines, l => l.StartsWith("home ", StringComparison.Ordinal))["home ".Length..];
        var threads = lines.Where(l => l.StartsWith("thread ", StringComparison.Ordinal)).Select(l => l["thread ".Length..].Split('\t')).ToList();
        Assert.Contains(threads, t => t[0] == ".NET Sockets"); // the probe did start the engine
        var strays = threads.Where(t => t[1] != home).Select(t => $"{t[0]} in {t[1]}").ToList();
        Assert.True(strays.Count == 0, $"threads outside the process's namespace {home}: {string.Join(", ", strays)}");
    }

    private static string NamespaceOf(string link) => new FileInfo(link).LinkTarget ?? string.Empty;

    /// <summary>A listening socket on 127.0.0.1 inside the namespace, made by a helper thread; its port.</summary>
    private static int FreePortInside(TestNamespace ns, out Socket listener)
    {
        Socket? made = null;
        var t = new Thread(() =>
        {
            using var target = File.OpenHandle(Path.Combine(SystemChecks.NetnsDirectory, ns.Name));
            if (Setns(target.DangerousGetHandle(), 0x40000000) != 0)
            {
                return;
            }

            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            s.Listen(64);
            made = s;
        });
        t.Start();
        t.Join(); // the thread ends inside the namespace; the socket stays bound there
        listener = made ?? throw new InvalidOperationException($"could not listen inside {ns.Name}");
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static extern int Setns(IntPtr fd, int nstype);
}
