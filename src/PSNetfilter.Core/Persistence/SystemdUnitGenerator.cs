using System.Text;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// The systemd unit of a boot set, after the conventions of netfilter-persistent.service and
/// nftables.service: a oneshot that stays active, runs before the network is configured and is stopped
/// before shutdown. It never declares Conflicts= with another firewall unit: it only touches its own
/// forwards, so it runs beside Docker, libvirt, kube-proxy, firewalld and netfilter-persistent.
/// </summary>
public static class SystemdUnitGenerator
{
    /// <summary><c>ip</c> as iproute2 installs it on Debian (/sbin/ip exists with and without merged /usr).</summary>
    public const string IpTool = "/sbin/ip";

    public const string Shell = "/bin/sh";

    /// <summary>
    /// The first line of every unit the module writes: only a unit file that begins with it is overwritten or
    /// removed (<see cref="UnitOwnership"/>).
    /// </summary>
    public const string Marker = "# Written by PSNetfilter Install-PortForwardService";

    /// <summary>
    /// Units that load or flush whole tables at boot (Debian's netfilter-persistent and nftables, firewalld, the
    /// iptables-services of Fedora/RHEL). The unit is ordered after them (After= only: no dependency and never
    /// Conflicts=), so their restore cannot replace the forwards; all of them run before network-pre.target as
    /// this unit does, so the order makes no cycle. Docker, libvirt and kube-proxy start later and only add their
    /// own rules, so the unit is not ordered against them.
    /// </summary>
    public static readonly IReadOnlyList<string> WholeTableRestorers = new[]
    {
        "netfilter-persistent.service", "nftables.service", "firewalld.service", "iptables.service", "ip6tables.service",
    };

    /// <summary>The unit file text (LF line ends, ASCII only).</summary>
    public static string Generate(BootSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var paths = new ServicePaths("/", set.UnitName);
        var ns = set.NetworkNamespace;
        var where = ns is null ? string.Empty : $" in network namespace {ns}";
        var count = set.Forwards.Count;
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append('\n');

        Line(Marker + ": do not edit, install again to change it.");
        Line($"# At boot it restores the {count} saved port forward{(count == 1 ? string.Empty : "s")} listed in {paths.ScriptFile}{where},");
        Line("# and only them: other forwards and every foreign rule (Docker, libvirt, kube-proxy...) are left alone.");
        Line("[Unit]");
        Line($"Description=PSNetfilter saved port forwards{where}");
        Line("Documentation=file:" + paths.ScriptFile);
        Line("DefaultDependencies=no");
        Line("Wants=network-pre.target");
        Line("Before=network-pre.target shutdown.target");
        Line("After=local-fs.target systemd-modules-load.service");
        Line("# Ordering only (no dependency, no conflict): units that load whole tables run first, so what they load");
        Line("# does not replace these forwards.");
        Line("After=" + string.Join(' ', WholeTableRestorers));
        Line("Conflicts=shutdown.target");
        Line(string.Empty);
        Line("[Service]");
        Line("Type=oneshot");
        Line("RemainAfterExit=yes");
        var prefix = ns is null ? string.Empty : $"{IpTool} netns exec {ns} ";
        Line($"ExecStart={prefix}{Shell} {paths.ScriptFile} start");
        Line($"ExecStop={prefix}{Shell} {paths.ScriptFile} stop");
        Line(string.Empty);
        Line("[Install]");
        Line("WantedBy=multi-user.target");
        return sb.ToString();
    }
}
