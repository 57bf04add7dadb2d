using PSNetfilter.Core.Backends;
using System.Diagnostics;
using PSNetfilter.Core.Persistence;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>One namespace-name rule (a blank name is never the host), and lock files of deleted namespaces.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class NamespaceNameAndLockTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "h1u-locks-" + Guid.NewGuid().ToString("n"));

    public NamespaceNameAndLockTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("\t")]
    [InlineData("ns1\n")]
    [InlineData("ns1\r\n")]
    [InlineData("\nns1")]
    [InlineData("ns 1")]
    [InlineData("..")]
    [InlineData("a/b")]
    public void A_blank_or_malformed_namespace_is_InvalidNetworkNamespace_everywhere(string name)
    {
        Assert.False(NetworkNamespaceName.IsValid(name));
        Assert.Equal("InvalidNetworkNamespace", Assert.Throws<NetfilterException>(() => NetworkNamespaceName.Check(name)).ErrorId);
        Assert.Equal("InvalidNetworkNamespace", Assert.Throws<NetfilterException>(() => SystemChecks.ValidateNetworkNamespace(name)).ErrorId);
        Assert.Equal("InvalidNetworkNamespace", Assert.Throws<NetfilterException>(() => new NetfilterHost(name)).ErrorId);
        Assert.Equal("InvalidNetworkNamespace", Assert.Throws<NetfilterException>(() => new BootSet("psnetfilter.service", name, new[] { PersistenceGeneratorTests.Web })).ErrorId);
    }

    [Fact]
    public void Null_is_the_host_and_a_valid_name_is_kept()
    {
        Assert.Null(NetworkNamespaceName.Check(null));
        Assert.Null(new NetfilterHost(null).NetworkNamespace);
        Assert.Equal("ns1", NetworkNamespaceName.Check("ns1"));
        Assert.Equal("a_b.c@d+e-f", NetworkNamespaceName.Check("a_b.c@d+e-f"));
    }

    [Theory]
    [InlineData("web\n")]
    [InlineData("web\n.service")]
    public void A_unit_name_with_a_trailing_newline_is_refused(string name)
    {
        Assert.Equal("InvalidUnitName", Assert.Throws<NetfilterException>(() => ServiceNames.Resolve(name, null)).ErrorId);
        Assert.False(ServiceNames.IsValid("psnetfilter-ns1\n.service"));
    }

    [Fact]
    public void A_lock_on_a_file_that_was_removed_or_replaced_is_not_the_lock_at_the_path()
    {
        var path = Path.Combine(_dir, "netns-x.lock");
        using (var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            Assert.True(NamespaceLock.IsAtPath(fs, path));
            File.Delete(path);
            Assert.False(NamespaceLock.IsAtPath(fs, path));
            File.WriteAllText(path, string.Empty);
            Assert.False(NamespaceLock.IsAtPath(fs, path));
        }
    }

    [Fact]
    public void Stale_lock_files_are_removed_unless_held_and_live_ones_stay()
    {
        var netns = Path.Combine(_dir, "netns");
        Directory.CreateDirectory(netns);
        File.WriteAllText(Path.Combine(netns, "alive"), string.Empty);
        foreach (var f in new[] { "netns-alive.lock", "netns-gone.lock", "netns-held.lock", "host.lock", "x.service.keep-forwards" })
        {
            File.WriteAllText(Path.Combine(_dir, f), string.Empty);
        }

        using (new FileStream(Path.Combine(_dir, "netns-held.lock"), FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            Assert.Equal(new[] { Path.Combine(_dir, "netns-gone.lock") }, NamespaceLock.RemoveStale(_dir, netns));
        }

        Assert.Equal(new[] { "host.lock", "netns", "netns-alive.lock", "netns-held.lock", "x.service.keep-forwards" }, Names());
        Assert.Equal(new[] { Path.Combine(_dir, "netns-held.lock") }, NamespaceLock.RemoveStale(_dir, netns));
    }

    /// <summary>
    /// The boot script waits for the flock on the lock file; meanwhile the file is removed as stale (under its
    /// lock). When the lock is released, the script must lock the file now at the path, not the removed one.
    /// </summary>
    [Fact]
    public void The_boot_script_takes_the_lock_again_when_the_file_it_waited_on_was_removed()
    {
        var lockPath = Path.Combine(_dir, "netns-h1u.lock");
        var script = BootScript.Generate(PersistenceGeneratorTests.Set());
        var start = script.IndexOf("psnf_lock() {", StringComparison.Ordinal);
        var function = script[start..(script.IndexOf("\n}\n", start, StringComparison.Ordinal) + 3)];
        var test = "psnf_err() { echo \"$*\" >&2; }\n" + function
            + "psnf_lock\nstat -L -c %i /proc/self/fd/9\nstat -c %i \"$PSNF_LOCK\" 2>/dev/null || echo missing\n";

        var holder = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        var inode = Sh.Check("stat", "-c", "%i", lockPath).Trim();
        var psi = new ProcessStartInfo("/bin/sh", new[] { "-c", test }) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["PSNF_LOCK"] = lockPath;
        using var sh = Process.Start(psi)!;
        try
        {
            // Wait until the script is blocked on our flock (a "->" waiter on the file's inode in /proc/locks).
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.ReadAllLines("/proc/locks").Any(l => l.Contains("->", StringComparison.Ordinal) && l.Contains(":" + inode + " ", StringComparison.Ordinal)))
            {
                Assert.True(DateTime.UtcNow < deadline, "the script never waited for the lock");
                Thread.Sleep(20);
            }

            File.Delete(lockPath); // what RemoveStale does while it holds the lock
            holder.Dispose();
            Assert.True(sh.WaitForExit(10000));
            var lines = sh.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, lines.Length);
            Assert.NotEqual(inode, lines[0]);
            Assert.Equal(lines[1], lines[0]); // the lock held is on the file at the path
        }
        finally
        {
            holder.Dispose();
            if (!sh.HasExited)
            {
                sh.Kill();
            }
        }
    }

    private string[] Names() => Directory.EnumerateFileSystemEntries(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
}
