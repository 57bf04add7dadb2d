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

    /// <summary>
    /// The firewall managers whose reload or start may wipe the forwards (a whole-table restorer's reload or
    /// restart flushes tables; nftables.service's stock /etc/nftables.conf begins with <c>flush ruleset</c>,
    /// which deletes the iptables-nft tables too) or rebuild the chains around them (Docker, libvirt). A reload
    /// of any of them reloads the unit (ReloadPropagatedFrom=, no dependency); each start of any of them, a
    /// restart included, starts the unit's re-apply helper (<see cref="GenerateReapply"/>), which reloads it.
    /// </summary>
    public static readonly IReadOnlyList<string> FollowedManagers =
        WholeTableRestorers.Concat(new[] { "docker.service", "libvirtd.service", "virtnetworkd.service" }).ToArray();

    /// <summary>systemctl as Debian installs it (/bin/systemctl exists with and without merged /usr).</summary>
    public const string Systemctl = "/bin/systemctl";

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
        Line("# A reload of a firewall manager reloads this unit too (no dependency): reload puts back what is missing");
        Line("# and leaves the forwards that are live as saved alone. Their starts and restarts: " + paths.ReapplyUnitName + ".");
        Line("ReloadPropagatedFrom=" + string.Join(' ', FollowedManagers));
        Line("Conflicts=shutdown.target");
        Line(string.Empty);
        Line("[Service]");
        Line("Type=oneshot");
        Line("RemainAfterExit=yes");
        var prefix = ns is null ? string.Empty : $"{IpTool} netns exec {ns} ";
        Line($"ExecStart={prefix}{Shell} {paths.ScriptFile} start");
        Line($"ExecReload={prefix}{Shell} {paths.ScriptFile} reload");
        Line($"ExecStop={prefix}{Shell} {paths.ScriptFile} stop");
        Line(string.Empty);
        Line("[Install]");
        Line("WantedBy=multi-user.target");
        return sb.ToString();
    }

    /// <summary>
    /// The unit's re-apply helper: a oneshot that each followed manager wants (links in their .wants folders,
    /// as its [Install] says), so systemd starts it after every start of one of them, a restart included. It
    /// reloads the unit when the unit is active (<c>try-reload-or-restart</c>; nothing when it is stopped) and
    /// does not wait for it (<c>--no-block</c>: a reload queued behind a start job never deadlocks). Ordering
    /// only: a manager that is not installed is not pulled in.
    /// </summary>
    public static string GenerateReapply(BootSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var paths = new ServicePaths("/", set.UnitName);
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append('\n');

        Line(Marker + ": do not edit, install again to change it.");
        Line($"# Each time one of the firewall managers below starts (a restart too), this reloads {set.UnitName} when it is");
        Line("# active: what the manager wiped comes back, and forwards that are live as saved are left alone.");
        Line("[Unit]");
        Line($"Description=PSNetfilter: re-apply {set.UnitName} after a firewall manager started");
        Line("Documentation=file:" + paths.ScriptFile);
        Line("DefaultDependencies=no");
        Line($"After={set.UnitName} " + string.Join(' ', FollowedManagers));
        Line(string.Empty);
        Line("[Service]");
        Line("Type=oneshot");
        Line($"ExecStart={Systemctl} --no-block try-reload-or-restart {set.UnitName}");
        Line(string.Empty);
        Line("[Install]");
        Line("WantedBy=" + string.Join(' ', FollowedManagers));
        return sb.ToString();
    }
}
