using System.Net;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Tests.Support;

/// <summary>
/// The test assembly's entry point. The test runner never calls it; tests start the assembly as a fresh process
/// (<c>dotnet exec PSNetfilter.Tests.dll --netns-threads NS PORT</c>) to observe what only a process's first use
/// of sockets and the thread pool shows.
/// </summary>
public static class ProbeProgram
{
    public static int Main(string[] args)
    {
        if (args.Length == 3 && args[0] == "--netns-threads")
        {
            // The namespace helper's first uses in this process: a netlink chain listing, a /proc read and a TCP
            // connect inside NS.
            _ = NftChains.ListAsync(args[1], IpFamily.IPv6).GetAwaiter().GetResult();
            var read = NamespaceThread.ReadFileAsync(args[1], "/proc/sys/net/ipv4/ip_forward").GetAwaiter().GetResult();
            var connected = NamespaceThread.CanConnectAsync(args[1], new IPEndPoint(IPAddress.Loopback, int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)), TimeSpan.FromSeconds(2)).GetAwaiter().GetResult();
            Thread.Sleep(200); // let the runtime start whatever threads the completions asked for
            Console.WriteLine($"read {read.Trim()} connected {connected}");
            foreach (var task in Directory.GetDirectories("/proc/self/task"))
            {
                Console.WriteLine($"thread {File.ReadAllText(Path.Combine(task, "comm")).Trim()}\t{new FileInfo(Path.Combine(task, "ns", "net")).LinkTarget}");
            }

            Console.WriteLine($"home {new FileInfo("/proc/self/ns/net").LinkTarget}");
            return 0;
        }

        Console.Error.WriteLine("PSNetfilter.Tests: run it with dotnet test.");
        return 2;
    }
}
