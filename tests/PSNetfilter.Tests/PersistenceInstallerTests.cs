using PSNetfilter.Core.Backends;
using System.Text;
using PSNetfilter.Core.Persistence;
using Xunit;
using static PSNetfilter.Tests.PersistenceGeneratorTests;
using PSNetfilter.Core.Backends.Iptables;

namespace PSNetfilter.Tests;

/// <summary>Writing a boot set under a root: atomic, idempotent, all-or-nothing; and reading installed sets back.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PersistenceInstallerTests : IDisposable
{
    private readonly string _root;

    public PersistenceInstallerTests()
    {
        _root = Path.Combine(Path.GetTempPath(), "psnfp-xunit-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(_root);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Apply_writes_script_unit_and_link_with_mode_0644()
    {
        var plan = ServiceInstaller.Plan(Set(), _root);
        Assert.True(plan.Changed);
        Assert.Equal(Enumerable.Repeat(FileChange.Created, 12), plan.Files.Select(f => f.Change));
        ServiceInstaller.Apply(plan);

        var script = Path.Combine(_root, "etc/psnetfilter/psnetfilter/apply.sh");
        var unit = Path.Combine(_root, "etc/systemd/system/psnetfilter.service");
        var link = Path.Combine(_root, "etc/systemd/system/multi-user.target.wants/psnetfilter.service");
        Assert.Equal(BootScript.Generate(Set()), File.ReadAllText(script));
        Assert.Equal(SystemdUnitGenerator.Generate(Set()), File.ReadAllText(unit));
        Assert.Equal(AtomicFile.Mode0644, File.GetUnixFileMode(script));
        Assert.Equal(AtomicFile.Mode0644, File.GetUnixFileMode(unit));
        Assert.Equal("/etc/systemd/system/psnetfilter.service", new FileInfo(link).LinkTarget);
        var helper = Path.Combine(_root, "etc/systemd/system/psnetfilter-reapply.service");
        Assert.Equal(SystemdUnitGenerator.GenerateReapply(Set()), File.ReadAllText(helper));
        Assert.Equal(AtomicFile.Mode0644, File.GetUnixFileMode(helper));
        foreach (var manager in SystemdUnitGenerator.FollowedManagers)
        {
            // What `systemctl --root enable psnetfilter-reapply.service` makes of its [Install] WantedBy=.
            Assert.Equal("/etc/systemd/system/psnetfilter-reapply.service", new FileInfo(Path.Combine(_root, $"etc/systemd/system/{manager}.wants/psnetfilter-reapply.service")).LinkTarget);
        }

        Assert.Equal(AtomicFile.Mode0755, File.GetUnixFileMode(Path.Combine(_root, "etc/psnetfilter/psnetfilter")) & AtomicFile.Mode0755);
        Assert.Empty(TempFiles());
    }

    [Fact]
    public void Same_set_again_changes_nothing_and_rewrites_nothing()
    {
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set(), _root));
        var before = Snapshot();
        Thread.Sleep(20);
        var again = ServiceInstaller.Plan(Set("psnetfilter.service", null, Web6, SshDirect, Dns, Web), _root);
        Assert.False(again.Changed);
        Assert.All(again.Files, f => Assert.Equal(FileChange.Unchanged, f.Change));
        ServiceInstaller.Apply(again);
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public void Another_set_replaces_script_and_unit_and_keeps_the_link()
    {
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set(), _root));
        var plan = ServiceInstaller.Plan(Set("psnetfilter.service", null, Web), _root);
        Assert.Equal(new[] { FileChange.Updated, FileChange.Updated }.Concat(Enumerable.Repeat(FileChange.Unchanged, 10)), plan.Files.Select(f => f.Change));
        ServiceInstaller.Apply(plan);
        Assert.Equal(new[] { "web" }, BootSetReader.Parse(File.ReadAllText(Path.Combine(_root, "etc/psnetfilter/psnetfilter/apply.sh")))!.ForwardNames);
        Assert.Empty(TempFiles());
    }

    [Fact]
    public void A_mode_that_was_changed_is_restored()
    {
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set(), _root));
        var unit = Path.Combine(_root, "etc/systemd/system/psnetfilter.service");
        File.SetUnixFileMode(unit, AtomicFile.Mode0755);
        var plan = ServiceInstaller.Plan(Set(), _root);
        Assert.Equal(FileChange.Updated, plan.Files.Single(f => f.HostPath == unit).Change);
        ServiceInstaller.Apply(plan);
        Assert.Equal(AtomicFile.Mode0644, File.GetUnixFileMode(unit));
    }

    [Fact]
    public void A_failure_leaves_nothing_behind()
    {
        Directory.CreateDirectory(Path.Combine(_root, "etc/psnetfilter"));
        File.WriteAllText(Path.Combine(_root, "etc/systemd"), "a file where a folder must be");
        var before = Tree();
        var ex = Assert.Throws<NetfilterException>(() => ServiceInstaller.Apply(ServiceInstaller.Plan(Set(), _root)));
        Assert.Equal("RootNotWritable", ex.ErrorId);
        Assert.Equal(FailureKind.PermissionDenied, ex.Kind);
        Assert.Contains(Path.Combine(_root, "etc/systemd"), ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, Tree());
    }

    [Fact]
    public void A_missing_root_is_RootNotFound()
    {
        var ex = Assert.Throws<NetfilterException>(() => ServiceInstaller.Plan(Set(), Path.Combine(_root, "missing")));
        Assert.Equal("RootNotFound", ex.ErrorId);
        Assert.False(Directory.Exists(Path.Combine(_root, "missing")));
    }

    [Fact]
    public void A_symlink_out_of_the_root_is_refused()
    {
        var image = Path.Combine(_root, "image");
        var outside = Path.Combine(_root, "outside");
        Directory.CreateDirectory(Path.Combine(image, "etc"));
        Directory.CreateDirectory(outside);
        File.CreateSymbolicLink(Path.Combine(image, "etc/systemd"), outside);
        var ex = Assert.Throws<NetfilterException>(() => ServiceInstaller.Apply(ServiceInstaller.Plan(Set(), image)));
        Assert.Equal("RootNotWritable", ex.ErrorId);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
        Assert.False(Directory.Exists(Path.Combine(image, "etc/psnetfilter")));
    }

    [Fact]
    public void Atomic_write_replaces_a_symlink_instead_of_following_it()
    {
        var target = Path.Combine(_root, "target");
        var path = Path.Combine(_root, "file");
        File.WriteAllText(target, "precious");
        File.CreateSymbolicLink(path, target);
        Assert.True(AtomicFile.Write(path, Encoding.UTF8.GetBytes("new"), AtomicFile.Mode0644));
        Assert.Null(new FileInfo(path).LinkTarget);
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal("precious", File.ReadAllText(target));
        Assert.False(AtomicFile.Write(path, Encoding.UTF8.GetBytes("new"), AtomicFile.Mode0644));
        Assert.Empty(TempFiles());
    }

    [Fact]
    public void Installed_sets_are_found_per_namespace_while_their_unit_exists()
    {
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set("psnetfilter.service", null, Web, Dns), _root));
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set("psnetfilter-gw1.service", "gw1", SshDirect), _root));
        Assert.Equal(new[] { "dns", "web" }, BootSetReader.PersistedNames(_root, null).Order(StringComparer.Ordinal));
        Assert.Equal(new[] { "ssh.direct" }, BootSetReader.PersistedNames(_root, "gw1"));
        Assert.Empty(BootSetReader.PersistedNames(_root, "gw2"));
        File.Delete(Path.Combine(_root, "etc/systemd/system/psnetfilter-gw1.service"));
        Assert.Empty(BootSetReader.PersistedNames(_root, "gw1"));
        Assert.Empty(BootSetReader.PersistedNames(Path.Combine(_root, "nothing"), null));
    }

    [Fact]
    public void Remove_deletes_exactly_the_unit_files()
    {
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set(), _root));
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set("other.service", null, Web), _root));
        var paths = new ServicePaths(_root, "psnetfilter.service");
        var files = ServiceInstaller.FindFiles(paths);
        Assert.Equal(12, files.Count);
        ServiceInstaller.Remove(paths, files);
        Assert.Empty(ServiceInstaller.FindFiles(paths));
        Assert.False(Directory.Exists(Path.Combine(_root, "etc/psnetfilter/psnetfilter")));
        Assert.DoesNotContain(Tree(), p => p.Contains("psnetfilter-reapply", StringComparison.Ordinal));
        var other = new ServicePaths(_root, "other.service");
        Assert.Equal(12, ServiceInstaller.FindFiles(other).Count);
        Assert.True(Directory.Exists(Path.Combine(_root, "etc/systemd/system/nftables.service.wants")), "other's helper link is still there");
        ServiceInstaller.Remove(other, ServiceInstaller.FindFiles(other));
        Assert.Equal(new[] { "etc", "etc/psnetfilter", "etc/systemd", "etc/systemd/system", "etc/systemd/system/multi-user.target.wants" }, Tree());
    }

    private string[] Tree() =>
        Directory.EnumerateFileSystemEntries(_root, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(_root, p)).Order(StringComparer.Ordinal).ToArray();

    private string[] TempFiles() => Tree().Where(p => p.EndsWith(".tmp", StringComparison.Ordinal)).ToArray();

    /// <summary>Path, inode-independent identity (write time) and content of every file.</summary>
    private string[] Snapshot() =>
        Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories)
            .Where(p => new FileInfo(p).LinkTarget is null)
            .Select(p => $"{Path.GetRelativePath(_root, p)} {File.GetLastWriteTimeUtc(p).Ticks} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(p)))}")
            .Order(StringComparer.Ordinal)
            .ToArray();
}
