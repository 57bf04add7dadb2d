using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace PSNetfilter.Core.Processes;

/// <summary>
/// Opens a TCP connection from inside a named network namespace: a dedicated thread enters the namespace
/// with setns(2) (which affects only that thread), creates the socket there, and exits. No shell, no helper process.
/// </summary>
public static class NamespaceSocket
{
    private const int CloneNewNet = 0x40000000;

    /// <summary>True when a TCP connection to <paramref name="endpoint"/> is accepted within <paramref name="timeout"/>.</summary>
    public static Task<bool> CanConnectAsync(string? networkNamespace, IPEndPoint endpoint, TimeSpan timeout)
    {
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
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

                using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                using var cts = new CancellationTokenSource(timeout);
                try
                {
                    socket.ConnectAsync(endpoint, cts.Token).AsTask().GetAwaiter().GetResult();
                    done.TrySetResult(true);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    done.TrySetResult(false);
                }
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = "psnetfilter-netns-connect",
        };
        thread.Start();
        return done.Task;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(IntPtr fd, int nstype);
}
