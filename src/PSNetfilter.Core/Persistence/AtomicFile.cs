using System.Security.Cryptography;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// Atomic replacement of files and symlinks: the new content goes to a temporary file in the same
/// directory (created with its final mode, flushed to disk), which is then renamed over the target. A
/// reader sees the old file or the new one, never a part. A file that already has the content and mode
/// is not touched at all.
/// </summary>
public static class AtomicFile
{
    public const UnixFileMode Mode0644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    public const UnixFileMode Mode0755 = Mode0644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>True when <paramref name="path"/> is a regular file with exactly this content and mode.</summary>
    public static bool IsCurrent(string path, byte[] content, UnixFileMode mode)
    {
        var info = new FileInfo(path);
        if (!info.Exists || info.LinkTarget is not null || info.Length != content.Length)
        {
            return false;
        }

        if (OperatingSystem.IsLinux() && (File.GetUnixFileMode(path) & (UnixFileMode)0xFFF) != mode)
        {
            return false;
        }

        return File.ReadAllBytes(path).AsSpan().SequenceEqual(content);
    }

    /// <summary>Writes <paramref name="content"/> to a new temporary file beside <paramref name="path"/>; returns its path.</summary>
    public static string WriteTemp(string path, byte[] content, UnixFileMode mode)
    {
        var temp = TempName(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (OperatingSystem.IsLinux())
        {
            options.UnixCreateMode = mode;
        }

        try
        {
            using (var fs = new FileStream(temp, options))
            {
                fs.Write(content);
                fs.Flush(flushToDisk: true);
            }

            if (OperatingSystem.IsLinux())
            {
                File.SetUnixFileMode(temp, mode); // the umask may have narrowed the create mode
            }

            return temp;
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Creates a symlink to <paramref name="target"/> under a temporary name beside <paramref name="path"/>.</summary>
    public static string CreateTempLink(string path, string target)
    {
        var temp = TempName(path);
        File.CreateSymbolicLink(temp, target);
        return temp;
    }

    /// <summary>rename(2) of the temporary file over the target.</summary>
    public static void Commit(string temp, string path) => File.Move(temp, path, overwrite: true);

    /// <summary>Writes the file atomically unless it is already current; returns whether it wrote.</summary>
    public static bool Write(string path, byte[] content, UnixFileMode mode)
    {
        if (IsCurrent(path, content, mode))
        {
            return false;
        }

        var temp = WriteTemp(path, content, mode);
        try
        {
            Commit(temp, path);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }

        return true;
    }

    /// <summary>True when <paramref name="path"/> is a symlink whose text is exactly <paramref name="target"/>.</summary>
    public static bool IsLinkTo(string path, string target)
    {
        var info = new FileInfo(path);
        return info.LinkTarget == target;
    }

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // best effort: a stray temporary file is harmless
        }
    }

    private static string TempName(string path)
    {
        var dir = Path.GetDirectoryName(path) ?? ".";
        var random = Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant();
        return Path.Combine(dir, "." + Path.GetFileName(path) + ".psnf-" + random + ".tmp");
    }
}
