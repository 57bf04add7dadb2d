using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PSNetfilter.Core.Host;

/// <summary>
/// Serialises read-plan-apply per network namespace across processes: an exclusive flock on
/// /run/psnetfilter/&lt;ns&gt;.lock. The kernel drops a flock when its holder dies, so a crashed
/// process cannot leave it held.
/// </summary>
/// <remarks>
/// The lock file of a namespace that no longer exists is removed (<see cref="RemoveStale"/>) by whoever takes a
/// lock next, without racing a live holder: it is unlinked only while its own flock is held, and a taker checks,
/// once it has the flock, that the file it locked is still the one at the path (same device and inode); if not,
/// the file was removed while it waited, and it takes the lock again on the file that is there now.
/// </remarks>
public sealed class NamespaceLock : IDisposable
{
    public const string DefaultDirectory = "/run/psnetfilter";

    private const string NamespacePrefix = "netns-";
    private const string Extension = ".lock";

    private readonly FileStream _stream;

    private NamespaceLock(FileStream stream, string path)
    {
        _stream = stream;
        Path = path;
    }

    public string Path { get; }

    /// <summary>The lock if it is free now, without waiting; null when another holder has it.</summary>
    public static NamespaceLock? TryAcquire(string? networkNamespace, string directory = DefaultDirectory)
    {
        Directory.CreateDirectory(directory);
        var path = LockPath(networkNamespace, directory);
        while (true)
        {
            FileStream fs;
            try
            {
                fs = Open(path, FileMode.OpenOrCreate);
            }
            catch (IOException)
            {
                return null;
            }

            if (IsAtPath(fs, path))
            {
                return Taken(fs, path, directory);
            }

            fs.Dispose(); // the file was removed between our open and our flock: lock the one at the path
        }
    }

    private static string LockPath(string? networkNamespace, string directory) =>
        System.IO.Path.Combine(directory, (networkNamespace is null ? "host" : NamespacePrefix + networkNamespace) + Extension);

    public static async Task<NamespaceLock> AcquireAsync(string? networkNamespace, TimeSpan timeout, CancellationToken cancellationToken, string directory = DefaultDirectory)
    {
        Directory.CreateDirectory(directory);
        var path = LockPath(networkNamespace, directory);
        var deadline = DateTime.UtcNow + timeout;
        var delay = 10;
        while (true)
        {
            try
            {
                // On Unix, FileShare.None takes flock(LOCK_EX | LOCK_NB) on the descriptor.
                var fs = Open(path, FileMode.OpenOrCreate);
                if (IsAtPath(fs, path))
                {
                    return Taken(fs, path, directory);
                }

                fs.Dispose(); // removed (stale) while we waited for it: take the file at the path now
                continue;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = Math.Min(delay * 2, 200);
            }
            catch (IOException ex)
            {
                throw new NetfilterException(
                    "LockTimeout",
                    FailureKind.OperationFailed,
                    $"Another PSNetfilter process has held {path} for more than {timeout.TotalSeconds:0} s. Try again when it has finished.",
                    path,
                    ex);
            }
        }
    }

    /// <summary>
    /// Removes the lock files in <paramref name="directory"/> of namespaces that no longer exist in
    /// <paramref name="netnsDirectory"/>. A file whose lock someone holds is left (the holder's command is still
    /// running); the others are unlinked while this holds their flock.
    /// </summary>
    /// <returns>The files removed.</returns>
    public static IReadOnlyList<string> RemoveStale(string directory = DefaultDirectory, string netnsDirectory = SystemChecks.NetnsDirectory)
    {
        var removed = new List<string>();
        string[] files;
        try
        {
            files = Directory.GetFiles(directory, NamespacePrefix + "*" + Extension);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return removed;
        }

        foreach (var file in files)
        {
            var name = System.IO.Path.GetFileName(file)[NamespacePrefix.Length..^Extension.Length];
            if (!NetworkNamespaceName.IsValid(name) || NamespaceExists(netnsDirectory, name))
            {
                continue;
            }

            try
            {
                using var fs = Open(file, FileMode.Open); // held (or already gone): IOException, left alone
                if (!NamespaceExists(netnsDirectory, name) && IsAtPath(fs, file))
                {
                    File.Delete(file); // under its flock: a taker that opened it meanwhile sees it is gone and retries
                    removed.Add(file);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // in use, or removed by another process first
            }
        }

        return removed;
    }

    public void Dispose() => _stream.Dispose();

    private static FileStream Open(string path, FileMode mode) => new(path, mode, FileAccess.ReadWrite, FileShare.None);

    private static bool NamespaceExists(string netnsDirectory, string name) => File.Exists(System.IO.Path.Combine(netnsDirectory, name));

    private static NamespaceLock Taken(FileStream fs, string path, string directory)
    {
        RemoveStale(directory);
        return new NamespaceLock(fs, path);
    }

    /// <summary>
    /// True when the file <paramref name="fs"/> has open is the one <paramref name="path"/> names now (same
    /// device and inode). True as well when that cannot be told (statx missing), so a taker never loops.
    /// </summary>
    internal static bool IsAtPath(FileStream fs, string path)
    {
        var open = new byte[StatxSize];
        var named = new byte[StatxSize];
        try
        {
            if (statx(fs.SafeFileHandle, string.Empty, AtEmptyPath, StatxIno, open) != 0)
            {
                return true;
            }

            if (statx(AtFdCwd, path, 0, StatxIno, named) != 0)
            {
                return Marshal.GetLastPInvokeError() != ENOENT;
            }
        }
        catch (EntryPointNotFoundException)
        {
            return true; // a C library without statx (glibc before 2.28)
        }

        // struct statx: stx_ino at offset 32, stx_dev_major and stx_dev_minor at 136 and 140.
        return open.AsSpan(32, 8).SequenceEqual(named.AsSpan(32, 8)) && open.AsSpan(136, 8).SequenceEqual(named.AsSpan(136, 8));
    }

    private const int StatxSize = 256;
    private const int AtFdCwd = -100;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxIno = 0x100;
    private const int ENOENT = 2;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int statx(SafeFileHandle dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string pathname, int flags, uint mask, byte[] buffer);

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string pathname, int flags, uint mask, byte[] buffer);
}
