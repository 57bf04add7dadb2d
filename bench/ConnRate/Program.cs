// ConnRate: many short TCP connections for a bounded time, for bench/Datapath.ps1.
//
//   server --port P [--seconds S]
//       Listens on [::]:P (dual stack). Each accepted connection gets one byte ("x") and is closed at once
//       (a normal FIN close: the server side holds TIME_WAIT). Exits after S seconds (default 600).
//   client --address A --port P [--seconds S] [--warmup W] [--concurrency C] [--timeout-ms T]
//       C loops, each: connect, read until the server closes, close. Runs W seconds unmeasured (JIT,
//       caches), then S seconds measured; prints one JSON line: completed connections, failures by kind,
//       and the rate (completed per second of the measured window). No connection is started after the
//       window ends; one still open then is left to finish (bounded by T) and not counted.
//
// Only the bench starts it, inside its own network namespaces (psnfb-*).

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0)
        {
            return Usage();
        }

        var options = ParseOptions(args.Skip(1));
        try
        {
            return args[0] switch
            {
                "server" => await ServeAsync(options),
                "client" => await LoadAsync(options),
                _ => Usage(),
            };
        }
        catch (Exception ex) when (ex is FormatException or KeyNotFoundException or ArgumentException)
        {
            Console.Error.WriteLine("ConnRate: " + ex.Message);
            return Usage();
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: ConnRate server --port P [--seconds S]");
        Console.Error.WriteLine("       ConnRate client --address A --port P [--seconds S] [--warmup W] [--concurrency C] [--timeout-ms T]");
        return 2;
    }

    private static Dictionary<string, string> ParseOptions(IEnumerable<string> args)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        string? key = null;
        foreach (var a in args)
        {
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                key = a[2..];
                d[key] = "true";
            }
            else if (key is not null)
            {
                d[key] = a;
                key = null;
            }
            else
            {
                throw new ArgumentException("unexpected argument " + a);
            }
        }

        return d;
    }

    private static double Number(Dictionary<string, string> o, string key, double fallback) =>
        o.TryGetValue(key, out var v) ? double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture) : fallback;

    private static async Task<int> ServeAsync(Dictionary<string, string> o)
    {
        var port = (int)Number(o, "port", 0);
        var lifetime = TimeSpan.FromSeconds(Number(o, "seconds", 600));
        using var listener = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
        listener.DualMode = true;
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
        listener.Listen(4096);
        using var stop = new CancellationTokenSource(lifetime);
        Console.WriteLine($"listening on port {port} for {lifetime.TotalSeconds} s");
        Console.Out.Flush();
        var one = new byte[] { (byte)'x' };
        var loops = Enumerable.Range(0, Math.Max(2, Environment.ProcessorCount)).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                Socket s;
                try
                {
                    s = await listener.AcceptAsync(stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                catch (SocketException)
                {
                    continue;
                }

                try
                {
                    s.NoDelay = true;
                    s.Send(one);
                }
                catch (SocketException)
                {
                    // the client went away first: nothing to do
                }
                finally
                {
                    s.Dispose();
                }
            }
        }).ToArray();
        await Task.WhenAll(loops);
        return 0;
    }

    private static async Task<int> LoadAsync(Dictionary<string, string> o)
    {
        var address = IPAddress.Parse(o["address"]);
        var port = (int)Number(o, "port", 0);
        var seconds = Number(o, "seconds", 5);
        var warmup = Number(o, "warmup", 0.5);
        var concurrency = (int)Number(o, "concurrency", 4);
        var timeout = TimeSpan.FromMilliseconds(Number(o, "timeout-ms", 2000));
        if (seconds <= 0 || seconds > 120 || concurrency < 1 || concurrency > 256 || port is < 1 or > 65535)
        {
            throw new ArgumentException("seconds must be in (0, 120], concurrency in [1, 256], port in [1, 65535]");
        }

        var endpoint = new IPEndPoint(address, port);
        var failures = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        long completed = 0;
        long measuring = 0; // 0 = warm-up, 1 = measured window, 2 = over
        var clock = Stopwatch.StartNew();
        var windowStart = TimeSpan.FromSeconds(warmup);
        var windowEnd = windowStart + TimeSpan.FromSeconds(seconds);

        async Task Loop()
        {
            var buffer = new byte[16];
            while (Interlocked.Read(ref measuring) < 2)
            {
                using var cts = new CancellationTokenSource(timeout);
                using var s = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                var phase = Interlocked.Read(ref measuring);
                try
                {
                    await s.ConnectAsync(endpoint, cts.Token);
                    var got = 0;
                    while (true)
                    {
                        var n = await s.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                        if (n == 0)
                        {
                            break;
                        }

                        got += n;
                    }

                    if (got == 0)
                    {
                        throw new IOException("closed without data");
                    }

                    // Count a connection in the window it started and ended in.
                    if (phase == 1 && Interlocked.Read(ref measuring) == 1)
                    {
                        Interlocked.Increment(ref completed);
                    }
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException)
                {
                    if (phase == 1)
                    {
                        var kind = ex is SocketException se ? se.SocketErrorCode.ToString() : ex is OperationCanceledException ? "Timeout" : "ClosedWithoutData";
                        failures.AddOrUpdate(kind, 1, (_, c) => c + 1);
                    }
                }
            }
        }

        var loops = Enumerable.Range(0, concurrency).Select(_ => Task.Run(Loop)).ToArray();
        await Task.Delay(windowStart);
        Interlocked.Exchange(ref measuring, 1);
        var t0 = clock.Elapsed;
        await Task.Delay(windowEnd - t0 > TimeSpan.Zero ? windowEnd - t0 : TimeSpan.Zero);
        var counted = Interlocked.Read(ref completed);
        Interlocked.Exchange(ref measuring, 2);
        var window = clock.Elapsed - t0;
        await Task.WhenAll(loops);
        var result = new
        {
            address = address.ToString(),
            port,
            concurrency,
            seconds = Math.Round(window.TotalSeconds, 3),
            completed = counted,
            failed = failures.Values.Sum(),
            failures = failures.ToDictionary(k => k.Key, v => v.Value),
            rate = Math.Round(counted / window.TotalSeconds, 1),
        };
        Console.WriteLine(JsonSerializer.Serialize(result));
        return 0;
    }
}
