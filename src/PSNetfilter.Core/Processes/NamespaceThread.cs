using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PSNetfilter.Core.Processes;

/// <summary>
/// Works inside a named network namespace without a process: a dedicated thread enters the namespace with
/// setns(2) (which affects only that thread), opens a socket or reads /proc/sys/net there, and exits.
/// </summary>
public static class NamespaceThread
{
    private const int CloneNewNet = 0x40000000;

    /// <summary>
    /// Reads a file as a task inside the namespace sees it: /proc/sys/net/... of that namespace (the kernel
    /// resolves /proc/sys/net by the reading thread's network namespace). No process is started.
    /// </summary>
    public static Task<string> ReadFileAsync(string? networkNamespace, string path) =>
        RunInNamespace(networkNamespace, () => File.ReadAllText(path));

    /// <summary>True when a TCP connection to <paramref name="endpoint"/> is accepted within <paramref name="timeout"/>.</summary>
    public static Task<bool> CanConnectAsync(string? networkNamespace, IPEndPoint endpoint, TimeSpan timeout) =>
        RunInNamespace(networkNamespace, () =>
        {
            using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                socket.ConnectAsync(endpoint, cts.Token).AsTask().GetAwaiter().GetResult();
                return true;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                return false;
            }
        });

    /// <summary>Runs <paramref name="work"/> on a fresh thread that has entered the namespace (setns), which then ends.</summary>
    private static Task<T> RunInNamespace<T>(string? networkNamespace, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                if (networkNamespace is not null)
                {
                    using var handle = File.OpenHandle(Path.Combine(SystemChecks.NetnsDirectory, networkNamespace));
                    if (setns(handle.DangerousGetHandle(), CloneNewNet) != 0)
                    {
                        done.TrySetException(new NetfilterException("NetworkNamespaceEnterFailed", FailureKind.OperationFailed, $"Cannot enter network namespace '{networkNamespace}' (errno {Marshal.GetLastPInvokeError()})."));
                        return;
                    }
                }

                done.TrySetResult(work());
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "psnetfilter-netns",
        };
        thread.Start();
        return done.Task;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(IntPtr fd, int nstype);
}
