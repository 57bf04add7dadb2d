using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PSNetfilter.Core.Host;

/// <summary>
/// Works inside a named network namespace without a process: a dedicated thread enters the namespace with
/// setns(2) (which affects only that thread), reads /proc/sys/net or opens a socket there, returns to the
/// process's own namespace, and only then reports its result and exits.
/// </summary>
/// <remarks>
/// A thread inherits the network namespace of the thread that creates it. So while this thread is inside
/// the namespace it must not cause the runtime to start a thread: no async I/O (the socket engine's thread),
/// no timers, and no task completion (which may start a thread-pool worker). Such a thread would stay in the
/// namespace for the rest of the session and run unrelated work there. The work below is synchronous, and
/// the result is handed over only after the setns back.
/// </remarks>
public static class NamespaceThread
{
    private const int CloneNewNet = 0x40000000;

    /// <summary>
    /// Reads a file as a task inside the namespace sees it: /proc/sys/net/... of that namespace (the kernel
    /// resolves /proc/sys/net by the reading thread's network namespace). No process is started.
    /// </summary>
    public static Task<string> ReadFileAsync(string? networkNamespace, string path) =>
        RunInNamespace(networkNamespace, () => File.ReadAllText(path));

    /// <summary>Writes <paramref name="text"/> to an existing file as a task inside the namespace sees it (/proc/sys/net/...).</summary>
    public static Task WriteFileAsync(string? networkNamespace, string path, string text) =>
        RunInNamespace(networkNamespace, () =>
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1, FileOptions.None);
            file.Write(System.Text.Encoding.ASCII.GetBytes(text));
            return true;
        });

    /// <summary>True when a TCP connection to <paramref name="endpoint"/> is accepted within <paramref name="timeout"/>.</summary>
    public static Task<bool> CanConnectAsync(string? networkNamespace, IPEndPoint endpoint, TimeSpan timeout)
    {
        // The first socket of a process starts the runtime's socket engine threads: start them here, in the
        // process's own namespace, not from the helper thread inside the other one.
        _ = SocketEngineStarted.Value;
        return RunInNamespace(networkNamespace, () => CanConnect(endpoint, timeout));
    }

    private static readonly Lazy<bool> SocketEngineStarted = new(() =>
    {
        using var warm = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        return true;
    });

    /// <summary>A non-blocking connect and poll(2): synchronous, so the runtime starts no thread for it.</summary>
    private static bool CanConnect(IPEndPoint endpoint, TimeSpan timeout)
    {
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
        try
        {
            socket.Connect(endpoint);
            return true;
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            // Connection under way: wait for it below.
        }
        catch (SocketException)
        {
            return false;
        }

        var micros = (int)Math.Clamp(timeout.TotalMicroseconds, 0, int.MaxValue);
        return socket.Poll(micros, SelectMode.SelectWrite)
            && socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error) is 0;
    }

    /// <summary>
    /// Runs synchronous <paramref name="work"/> inside the namespace (see the remarks: it must not start a
    /// runtime thread, so no async I/O, timers or tasks).
    /// </summary>
    public static Task<T> RunAsync<T>(string? networkNamespace, Func<T> work) => RunInNamespace(networkNamespace, work);

    /// <summary>
    /// Runs <paramref name="work"/> on a fresh thread that has entered the namespace (setns), returns it to the
    /// process's namespace, then completes the task; the thread then ends.
    /// </summary>
    private static Task<T> RunInNamespace<T>(string? networkNamespace, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            T result = default!;
            Exception? error = null;
            try
            {
                result = networkNamespace is null ? work() : InNamespace(networkNamespace, work);
            }
            catch (Exception ex)
            {
                error = ex;
            }

            // Back in the process's own namespace (or never left it): now the result may wake other threads.
            if (error is null)
            {
                done.TrySetResult(result);
            }
            else
            {
                done.TrySetException(error);
            }
        })
        {
            IsBackground = true,
            Name = "psnetfilter-netns",
        };
        thread.Start();
        return done.Task;
    }

    private static T InNamespace<T>(string networkNamespace, Func<T> work)
    {
        using var home = File.OpenHandle("/proc/thread-self/ns/net");
        using (var target = File.OpenHandle(Path.Combine(SystemChecks.NetnsDirectory, networkNamespace)))
        {
            Enter(target, $"Cannot enter network namespace '{networkNamespace}'");
        }

        try
        {
            return work();
        }
        finally
        {
            Enter(home, "Cannot return to the process's own network namespace");
        }
    }

    private static void Enter(SafeFileHandle handle, string failure)
    {
        if (setns(handle.DangerousGetHandle(), CloneNewNet) != 0)
        {
            throw new NetfilterException("NetworkNamespaceEnterFailed", FailureKind.OperationFailed, $"{failure} (errno {Marshal.GetLastPInvokeError()}).");
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(IntPtr fd, int nstype);
}
