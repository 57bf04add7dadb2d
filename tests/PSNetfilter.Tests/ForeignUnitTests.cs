using PSNetfilter.Core.Persistence;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;
using Xunit;
using static PSNetfilter.Tests.PersistenceGeneratorTests;

namespace PSNetfilter.Tests;

/// <summary>
/// Install and Uninstall touch only units the module wrote: any other unit of the name, in a unit directory of
/// the target root or known to the running systemd, is refused with ForeignUnitExists and nothing changes.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ForeignUnitTests : IDisposable
{
    private const string VendorSshd = "[Unit]\nDescription=OpenBSD Secure Shell server\n\n[Service]\nExecStart=/usr/sbin/sshd -D\n\n[Install]\nWantedBy=multi-user.target\n";

    private readonly string _root;

    public ForeignUnitTests()
    {
        _root = Path.Combine(Path.GetTempPath(), "h1u-units-" + Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(_root);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("usr/lib/systemd/system")]
    [InlineData("lib/systemd/system")]
    [InlineData("run/systemd/system")]
    [InlineData("usr/local/lib/systemd/system")]
    [InlineData("etc/systemd/system")]
    public async Task Install_refuses_a_unit_of_the_same_name_it_did_not_write(string dir)
    {
        var vendor = Write(dir + "/sshd.service", VendorSshd);
        var before = Tree();

        var ex = await Assert.ThrowsAsync<NetfilterException>(() => Manager().PrepareInstallAsync(Set("sshd.service"), _root, CancellationToken.None));

        Assert.Equal("ForeignUnitExists", ex.ErrorId);
        Assert.Equal(FailureKind.ResourceExists, ex.Kind);
        Assert.Equal(vendor, ex.Target);
        Assert.Contains(vendor, ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, Tree());
        Assert.Equal(VendorSshd, File.ReadAllText(vendor));
    }

    [Fact]
    public void An_admins_own_unit_in_etc_is_not_overwritten()
    {
        var own = Write("etc/systemd/system/myapp.service", "[Service]\nExecStart=/usr/local/bin/myapp\n");
        var ex = Assert.Throws<NetfilterException>(() => ServiceInstaller.Plan(Set("myapp.service"), _root));
        Assert.Equal("ForeignUnitExists", ex.ErrorId);
        Assert.Contains("overwrite", ex.Message, StringComparison.Ordinal);
        Assert.Equal("[Service]\nExecStart=/usr/local/bin/myapp\n", File.ReadAllText(own));
    }

    [Fact]
    public void A_masked_unit_is_foreign()
    {
        var link = Path.Combine(_root, "etc/systemd/system/myapp.service");
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        File.CreateSymbolicLink(link, "/dev/null");
        var ex = Assert.Throws<NetfilterException>(() => ServiceInstaller.Plan(Set("myapp.service"), _root));
        Assert.Equal("ForeignUnitExists", ex.ErrorId);
        Assert.Equal("/dev/null", new FileInfo(link).LinkTarget);
    }

    [Fact]
    public async Task A_unit_it_wrote_is_installed_again_and_uninstalled()
    {
        var manager = Manager();
        Assert.NotNull(await manager.InstallAsync(await manager.PrepareInstallAsync(Set("myapp.service"), _root, CancellationToken.None), noStart: true, CancellationToken.None));
        var again = await manager.PrepareInstallAsync(Set("myapp.service", null, Web), _root, CancellationToken.None);
        Assert.True(again.Plan.Changed);
        var prepared = await manager.PrepareUninstallAsync("myapp.service", _root, CancellationToken.None);
        Assert.Equal(12, prepared.Files.Count); // script, unit, re-apply helper, enabling link, the helper's 8 links
        Assert.True(await manager.UninstallAsync(prepared, removeForwards: false, CancellationToken.None));
        Assert.DoesNotContain(Tree(), p => p.Contains("myapp", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Uninstall_refuses_an_admins_unit_and_its_enabling_link()
    {
        var unit = Write("etc/systemd/system/foreign.service", "[Service]\nExecStart=/bin/true\n");
        var link = Path.Combine(_root, "etc/systemd/system/multi-user.target.wants/foreign.service");
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        File.CreateSymbolicLink(link, "/etc/systemd/system/foreign.service");
        var before = Tree();

        var ex = await Assert.ThrowsAsync<NetfilterException>(() => Manager().PrepareUninstallAsync("foreign.service", _root, CancellationToken.None));

        Assert.Equal("ForeignUnitExists", ex.ErrorId);
        Assert.Equal(unit, ex.Target);
        Assert.Contains("Nothing was removed", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, Tree());
    }

    [Fact]
    public async Task Uninstall_refuses_a_vendor_unit_and_leaves_its_enabling_link()
    {
        Write("usr/lib/systemd/system/sshd.service", VendorSshd);
        var link = Path.Combine(_root, "etc/systemd/system/multi-user.target.wants/sshd.service");
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        File.CreateSymbolicLink(link, "/usr/lib/systemd/system/sshd.service");
        var before = Tree();

        var ex = await Assert.ThrowsAsync<NetfilterException>(() => Manager().PrepareUninstallAsync("sshd.service", _root, CancellationToken.None));

        Assert.Equal("ForeignUnitExists", ex.ErrorId);
        Assert.Equal(before, Tree());
    }

    [Fact]
    public async Task Uninstall_of_its_own_unit_leaves_a_vendor_unit_it_shadowed_and_that_units_links()
    {
        // A unit written over a vendor's before the check existed: removing it must leave the vendor's alone.
        ServiceInstaller.Apply(ServiceInstaller.Plan(Set("sshd.service"), _root));
        var vendor = Write("usr/lib/systemd/system/sshd.service", VendorSshd);
        var vendorLink = Path.Combine(_root, "etc/systemd/system/sockets.target.wants/sshd.service");
        Directory.CreateDirectory(Path.GetDirectoryName(vendorLink)!);
        File.CreateSymbolicLink(vendorLink, "/usr/lib/systemd/system/sshd.service");

        var manager = Manager();
        var prepared = await manager.PrepareUninstallAsync("sshd.service", _root, CancellationToken.None);
        Assert.DoesNotContain(prepared.Files, f => f.HostPath == vendorLink);
        await manager.UninstallAsync(prepared, removeForwards: false, CancellationToken.None);

        Assert.Equal(VendorSshd, File.ReadAllText(vendor));
        Assert.Equal("/usr/lib/systemd/system/sshd.service", new FileInfo(vendorLink).LinkTarget);
        Assert.False(File.Exists(Path.Combine(_root, "etc/systemd/system/sshd.service")));
    }

    [Theory]
    [InlineData("loaded", "/run/systemd/transient/h1u-probe.service", "/run/systemd/transient/h1u-probe.service")]
    [InlineData("loaded", "/run/systemd/generator/h1u-probe.service", "/run/systemd/generator/h1u-probe.service")]
    [InlineData("masked", "", "h1u-probe.service (LoadState=masked)")]
    [InlineData("not-found", "", null)]
    [InlineData("loaded", "/etc/systemd/system/h1u-probe.service", null)]
    public async Task On_the_host_a_unit_the_running_systemd_knows_from_another_file_is_refused(string loadState, string fragment, string? refused)
    {
        var runner = new SystemctlShow($"FragmentPath={fragment}\nLoadState={loadState}\n");
        var manager = new PortForwardServiceManager(new SystemdControl(runner, runningMarker: _root), new RecordingObserver());

        var install = await Record(() => manager.PrepareInstallAsync(Set("h1u-probe.service"), "/", CancellationToken.None));
        Assert.Equal(refused is null ? null : "ForeignUnitExists", install?.ErrorId);
        Assert.Equal(refused, install?.Target as string);
        Assert.Contains(runner.Calls, c => c.SequenceEqual(new[] { "show", "h1u-probe.service", "-p", "FragmentPath,LoadState" }));
    }

    [Fact]
    public async Task Systemd_is_not_asked_about_an_image_root()
    {
        var runner = new SystemctlShow("FragmentPath=/usr/lib/systemd/system/h1u-probe.service\nLoadState=loaded\n");
        var manager = new PortForwardServiceManager(new SystemdControl(runner, runningMarker: _root), new RecordingObserver());
        await manager.PrepareInstallAsync(Set("h1u-probe.service"), _root, CancellationToken.None);
        Assert.Empty(runner.Calls);
    }

    private static async Task<NetfilterException?> Record(Func<Task> call)
    {
        try
        {
            await call();
            return null;
        }
        catch (NetfilterException ex)
        {
            return ex;
        }
    }

    private static PortForwardServiceManager Manager() =>
        new(new SystemdControl(new SystemctlShow(string.Empty), runningMarker: "/nonexistent/h1u-marker"), new RecordingObserver());

    private string Write(string relative, string text)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    private string[] Tree() =>
        Directory.EnumerateFileSystemEntries(_root, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(_root, p) + (new FileInfo(p).LinkTarget is { } t ? " -> " + t : File.Exists(p) ? " " + File.ReadAllText(p).GetHashCode(StringComparison.Ordinal) : "/"))
            .Order(StringComparer.Ordinal)
            .ToArray();

    /// <summary>Answers <c>systemctl show</c> with a fixed text and records every call.</summary>
    private sealed class SystemctlShow : IProcessRunner
    {
        private readonly string _output;

        public SystemctlShow(string output) => _output = output;

        public List<string[]> Calls { get; } = new();

        public Task<ProcessResult> RunAsync(ProcessRequest request, CancellationToken cancellationToken)
        {
            Calls.Add(request.Arguments.ToArray());
            return Task.FromResult(new ProcessResult(0, _output, string.Empty));
        }
    }
}
