
namespace PSNetfilter.Core.Processes;

/// <summary>
/// Serialises read-plan-apply per network namespace across processes: an exclusive flock on
/// /run/psnetfilter/&lt;ns&gt;.lock. The kernel drops a flock when its holder dies, so a crashed
/// process cannot leave it held.
/// </summary>
public sealed class NamespaceLock : IDisposable
{
    public const string DefaultDirectory = "/run/psnetfilter";

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
        try
        {
            return new NamespaceLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None), path);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string LockPath(string? networkNamespace, string directory) =>
        System.IO.Path.Combine(directory, (networkNamespace is null ? "host" : "netns-" + networkNamespace) + ".lock");

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
                var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                return new NamespaceLock(fs, path);
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

    public void Dispose() => _stream.Dispose();
}
