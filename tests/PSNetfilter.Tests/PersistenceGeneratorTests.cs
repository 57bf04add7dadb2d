using System.Diagnostics;
using System.Net;
using PSNetfilter.Core.Persistence;
using PSNetfilter.Core.Backends.Iptables;
using Xunit;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Tests;

/// <summary>The generated unit and boot-set script (issue 3): exact text where it is this generator's own, derived from RuleLayout where the layout decides.</summary>
public class PersistenceGeneratorTests
{
    internal static IPAddress Ip(string s) => IPAddress.Parse(s);

    internal static PortForwardDefinition Web => PortForwardDefinition.Create(
        "web", Protocol.Tcp, Ip("203.0.113.1"), 8080, Ip("198.51.100.10"), 8080, SnatMode.Snat, Ip("198.51.100.1"), null);

    internal static PortForwardDefinition Dns => PortForwardDefinition.Create(
        "dns", Protocol.Udp, null, 5353, Ip("198.51.100.10"), 53, SnatMode.Masquerade, null, "it's \"quoted\"\n$(rm -rf /) é");

    internal static PortForwardDefinition SshDirect => PortForwardDefinition.Create(
        "ssh.direct", Protocol.Tcp, Ip("203.0.113.1"), 2222, Ip("198.51.100.20"), 22, SnatMode.None, null, null);

    internal static PortForwardDefinition Web6 => PortForwardDefinition.Create(
        "web6", Protocol.Tcp, Ip("2001:db8:1::1"), 8080, Ip("2001:db8:2::10"), 80, SnatMode.Snat, Ip("2001:db8:2::1"), null);

    internal static BootSet Set(string unit = "psnetfilter.service", string? ns = null, params PortForwardDefinition[] defs) =>
        new(unit, ns, defs.Length == 0 ? new[] { Web, Dns, SshDirect, Web6 } : defs);

    [Fact]
    public void Unit_for_the_host_namespace()
    {
        Assert.Equal(
            "# Written by PSNetfilter Install-PortForwardService: do not edit, install again to change it.\n"
            + "# At boot it restores the 4 saved port forwards listed in /etc/psnetfilter/psnetfilter/apply.sh,\n"
            + "# and only them: other forwards and every foreign rule (Docker, libvirt, kube-proxy...) are left alone.\n"
            + "[Unit]\n"
            + "Description=PSNetfilter saved port forwards\n"
            + "Documentation=file:/etc/psnetfilter/psnetfilter/apply.sh\n"
            + "DefaultDependencies=no\n"
            + "Wants=network-pre.target\n"
            + "Before=network-pre.target shutdown.target\n"
            + "After=local-fs.target systemd-modules-load.service\n"
            + "# Ordering only (no dependency, no conflict): units that load whole tables run first, so what they load\n"
            + "# does not replace these forwards.\n"
            + "After=netfilter-persistent.service nftables.service firewalld.service iptables.service ip6tables.service\n"
            + "# A reload of a firewall manager reloads this unit too (no dependency): reload puts back what is missing\n"
            + "# and leaves the forwards that are live as saved alone. Their starts and restarts: psnetfilter-reapply.service.\n"
            + "ReloadPropagatedFrom=netfilter-persistent.service nftables.service firewalld.service iptables.service ip6tables.service docker.service libvirtd.service virtnetworkd.service\n"
            + "Conflicts=shutdown.target\n"
            + "\n"
            + "[Service]\n"
            + "Type=oneshot\n"
            + "RemainAfterExit=yes\n"
            + "ExecStart=/bin/sh /etc/psnetfilter/psnetfilter/apply.sh start\n"
            + "ExecReload=/bin/sh /etc/psnetfilter/psnetfilter/apply.sh reload\n"
            + "ExecStop=/bin/sh /etc/psnetfilter/psnetfilter/apply.sh stop\n"
            + "\n"
            + "[Install]\n"
            + "WantedBy=multi-user.target\n",
            SystemdUnitGenerator.Generate(Set()));
    }

    [Fact]
    public void Reapply_helper_is_wanted_by_every_followed_manager_and_only_reloads_the_unit()
    {
        Assert.Equal(
            "# Written by PSNetfilter Install-PortForwardService: do not edit, install again to change it.\n"
            + "# Each time one of the firewall managers below starts (a restart too), this reloads psnetfilter-gw1.service when it is\n"
            + "# active: what the manager wiped comes back, and forwards that are live as saved are left alone.\n"
            + "[Unit]\n"
            + "Description=PSNetfilter: re-apply psnetfilter-gw1.service after a firewall manager started\n"
            + "Documentation=file:/etc/psnetfilter/psnetfilter-gw1/apply.sh\n"
            + "DefaultDependencies=no\n"
            + "After=psnetfilter-gw1.service netfilter-persistent.service nftables.service firewalld.service iptables.service ip6tables.service docker.service libvirtd.service virtnetworkd.service\n"
            + "\n"
            + "[Service]\n"
            + "Type=oneshot\n"
            + "ExecStart=/bin/systemctl --no-block try-reload-or-restart psnetfilter-gw1.service\n"
            + "\n"
            + "[Install]\n"
            + "WantedBy=netfilter-persistent.service nftables.service firewalld.service iptables.service ip6tables.service docker.service libvirtd.service virtnetworkd.service\n",
            SystemdUnitGenerator.GenerateReapply(Set("psnetfilter-gw1.service", "gw1", Web)));
    }

    [Fact]
    public void Units_never_pull_in_or_bind_to_a_firewall_manager()
    {
        // Wants=/Requires=/BindsTo=/PartOf= of a manager would start it, fail without it, or stop the forwards
        // when it stops; the brief allows ordering and reload propagation only.
        foreach (var text in new[] { SystemdUnitGenerator.Generate(Set()), SystemdUnitGenerator.GenerateReapply(Set()) })
        {
            foreach (var line in text.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')))
            {
                var key = line.Split('=')[0];
                Assert.DoesNotContain(key, new[] { "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "PropagatesStopTo", "StopPropagatedFrom" });
                if (key == "Wants")
                {
                    Assert.Equal("Wants=network-pre.target", line);
                }
            }
        }

        Assert.Equal(
            new[] { "netfilter-persistent.service", "nftables.service", "firewalld.service", "iptables.service", "ip6tables.service", "docker.service", "libvirtd.service", "virtnetworkd.service" },
            SystemdUnitGenerator.FollowedManagers);
    }

    [Fact]
    public void Unit_for_a_named_namespace_runs_the_script_inside_it_and_says_so()
    {
        var unit = SystemdUnitGenerator.Generate(Set("psnetfilter-gw1.service", "gw1", Web));
        var lines = unit.Split('\n');
        Assert.Contains("Description=PSNetfilter saved port forwards in network namespace gw1", lines);
        Assert.Contains("ExecStart=/sbin/ip netns exec gw1 /bin/sh /etc/psnetfilter/psnetfilter-gw1/apply.sh start", lines);
        Assert.Contains("ExecStop=/sbin/ip netns exec gw1 /bin/sh /etc/psnetfilter/psnetfilter-gw1/apply.sh stop", lines);
        Assert.Contains("ExecReload=/sbin/ip netns exec gw1 /bin/sh /etc/psnetfilter/psnetfilter-gw1/apply.sh reload", lines);
        Assert.Contains("# At boot it restores the 1 saved port forward listed in /etc/psnetfilter/psnetfilter-gw1/apply.sh in network namespace gw1,", lines);
        Assert.Equal(new[] { "Conflicts=shutdown.target" }, lines.Where(l => l.StartsWith("Conflicts=", StringComparison.Ordinal)));
    }

    [Fact]
    public void Script_header_names_the_set_and_only_safe_text()
    {
        var script = BootScript.Generate(Set());
        var header = script.Split('\n').TakeWhile(l => l.StartsWith('#')).ToArray();
        Assert.Equal("#!/bin/sh", header[0]);
        Assert.Contains("# psnf-boot-set: 1", header);
        Assert.Contains("# psnf-unit: psnetfilter.service", header);
        Assert.Contains("# psnf-namespace: -", header);
        Assert.Equal(
            new[] { "dns IPv4 ", "ssh.direct IPv4 ", "web IPv4 ", "web6 IPv6 " },
            header.Where(l => l.StartsWith("# psnf-forward: ", StringComparison.Ordinal)).Select(l => string.Join(' ', l["# psnf-forward: ".Length..].Split(' ').Take(2)) + " "));
        Assert.DoesNotContain("quoted", script, StringComparison.Ordinal);
        Assert.DoesNotContain("rm -rf", script, StringComparison.Ordinal);
        Assert.Matches("^[\\x20-\\x7e\\n]*$", script);
        Assert.DoesNotContain('\r', script);
    }

    [Fact]
    public void Script_data_section_golden()
    {
        var script = BootScript.Generate(Set());
        Assert.Contains("\nset -u -f\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nLC_ALL=C\nexport PATH LC_ALL\n", script, StringComparison.Ordinal);
        Assert.Contains("\nPSNF_UNIT='psnetfilter.service'\nPSNF_LOCK='/run/psnetfilter/host.lock'\nPSNF_KEEP='/run/psnetfilter/psnetfilter.service.keep-forwards'\n", script, StringComparison.Ordinal);
        Assert.Contains("\nPSNF_TABLES='nat filter'\n", script, StringComparison.Ordinal);
        Assert.Contains("\nPSNF_IPV4_NAMES='dns ssh.direct web'\n", script, StringComparison.Ordinal);
        Assert.Contains("\nPSNF_IPV6_NAMES='web6'\n", script, StringComparison.Ordinal);
        Assert.Contains(
            "\npsnf_saved() {\n    case $1 in\n"
            + "        *'--comment \"'psnf:v1:[dD][nN][sS]:* | *'--comment 'psnf:v1:[dD][nN][sS]:*) return 0 ;;\n"
            + "        *'--comment \"'psnf:v1:[sS][sS][hH].[dD][iI][rR][eE][cC][tT]:* | *'--comment 'psnf:v1:[sS][sS][hH].[dD][iI][rR][eE][cC][tT]:*) return 0 ;;\n"
            + "        *'--comment \"'psnf:v1:[wW][eE][bB]:* | *'--comment 'psnf:v1:[wW][eE][bB]:*) return 0 ;;\n"
            + "        *'--comment \"'psnf:v1:[wW][eE][bB]6:* | *'--comment 'psnf:v1:[wW][eE][bB]6:*) return 0 ;;\n"
            + "    esac\n    return 1\n}\n",
            script,
            StringComparison.Ordinal);
        Assert.Contains("\npsnf_hooked() {\n    case $1 in\n        " + string.Join(" | ", RuleLayout.Hooks.Select(h => h.Chain)) + ") return 0 ;;\n", script, StringComparison.Ordinal);
        Assert.Contains("\ncase ${1:-} in\n    start | reload) psnf_start \"$1\" ;;\n    stop) psnf_stop ;;\n", script, StringComparison.Ordinal);
    }

    [Fact]
    public void Script_rules_tree_and_hooks_are_what_the_rule_layout_renders()
    {
        var set = Set();
        var script = BootScript.Generate(set);
        foreach (var family in new[] { IpFamily.IPv4, IpFamily.IPv6 })
        {
            var tag = family == IpFamily.IPv4 ? "IPV4" : "IPV6";
            var rendered = set.ForFamily(family).SelectMany(RuleLayout.Render).ToList();
            foreach (var table in RuleLayout.Tables)
            {
                var rules = rendered.Where(r => r.Table == table).ToList();
                Assert.Equal(rules.Select(r => $"-A {r.Chain} {r.Spec}"), Variable(script, $"PSNF_{tag}_{table}_RULES"));
                Assert.Equal(rules.SelectMany(r => r.Path).Select(s => $"{s.Parent} {s.Chain} {s.Spec}").Distinct(), Variable(script, $"PSNF_{tag}_{table}_TREE"));
                var hooks = RuleLayout.Hooks.Where(h => h.Table == table && rules.Any(r => r.Chain == h.Chain || (r.Path.Count > 0 && r.Path[0].Parent == h.Chain)));
                Assert.Equal(hooks.Select(h => $"{h.BuiltinChain} {h.Chain}"), Variable(script, $"PSNF_{tag}_{table}_HOOKS"));
            }
        }

        // Every rule of the set is in the script once, and each one is tagged with its forward's name.
        var all = set.Forwards.SelectMany(RuleLayout.Render).ToList();
        Assert.All(all, r => Assert.Contains(ForwardTag.TagPrefix, r.Spec, StringComparison.Ordinal));
        var inScript = new[] { "IPV4", "IPV6" }.SelectMany(f => RuleLayout.Tables.SelectMany(t => Variable(script, $"PSNF_{f}_{t}_RULES"))).ToList();
        Assert.Equal(all.Count, inScript.Count);
        Assert.All(inScript, l => Assert.Contains(ForwardTag.TagPrefix, l, StringComparison.Ordinal));
    }

    [Fact]
    public void Same_set_in_any_order_renders_the_same_bytes()
    {
        var a = new BootSet("psnetfilter.service", null, new[] { Web, Dns, SshDirect, Web6 });
        var b = new BootSet("psnetfilter.service", null, new[] { Web6, SshDirect, Web, Dns, Web });
        Assert.Equal(BootScript.Generate(a), BootScript.Generate(b));
        Assert.Equal(SystemdUnitGenerator.Generate(a), SystemdUnitGenerator.Generate(b));
        Assert.Equal(new[] { "dns", "ssh.direct", "web", "web6" }, b.Forwards.Select(f => f.Name));
        Assert.NotEqual(BootScript.Generate(a), BootScript.Generate(new BootSet("psnetfilter.service", null, new[] { Web, Dns })));
    }

    [Fact]
    public void Bad_sets_fail_with_stable_ids()
    {
        Assert.Equal("NoForwardsGiven", Assert.Throws<NetfilterException>(() => new BootSet("psnetfilter.service", null, Array.Empty<PortForwardDefinition>())).ErrorId);
        var otherWeb = PortForwardDefinition.Create("web", Protocol.Tcp, null, 9090, Ip("198.51.100.10"), 80, SnatMode.Masquerade, null, null);
        Assert.Equal("DuplicateForwardName", Assert.Throws<NetfilterException>(() => new BootSet("psnetfilter.service", null, new[] { Web, otherWeb })).ErrorId);
        var lostSnat = PortForwardDefinition.CreateFromKernel("lost", Protocol.Tcp, null, 8080, Ip("198.51.100.10"), 8080, SnatMode.Snat, null, null);
        Assert.Equal("IncompleteForwardDefinition", Assert.Throws<NetfilterException>(() => new BootSet("psnetfilter.service", null, new[] { lostSnat })).ErrorId);
        Assert.Equal("InvalidUnitName", Assert.Throws<NetfilterException>(() => new BootSet("bad name.service", null, new[] { Web })).ErrorId);
        Assert.Equal("InvalidNetworkNamespace", Assert.Throws<NetfilterException>(() => new BootSet("x.service", "../etc", new[] { Web })).ErrorId);
    }

    [Theory]
    [InlineData(null, null, "psnetfilter.service")]
    [InlineData(null, "gw1", "psnetfilter-gw1.service")]
    [InlineData("web", null, "web.service")]
    [InlineData("web.service", "gw1", "web.service")]
    [InlineData("edge.fw_1-a", null, "edge.fw_1-a.service")]
    public void Unit_names_resolve(string? name, string? ns, string expected) =>
        Assert.Equal(expected, ServiceNames.Resolve(name, ns));

    [Theory]
    [InlineData("bad name", null)]
    [InlineData("a/b", null)]
    [InlineData("x.timer", null)]
    [InlineData("tmpl@.service", null)]
    [InlineData("tmpl@inst", null)]
    [InlineData(".hidden", null)]
    [InlineData("-dash", null)]
    [InlineData("a:b", null)]
    [InlineData("a%b", null)]
    [InlineData("a\nb", null)]
    [InlineData("ünicode", null)]
    [InlineData(null, "ns@1")]
    [InlineData(null, "ns+1")]
    public void Invalid_unit_names_fail_with_InvalidUnitName(string? name, string? ns) =>
        Assert.Equal("InvalidUnitName", Assert.Throws<NetfilterException>(() => ServiceNames.Resolve(name, ns)).ErrorId);

    [Fact]
    public void Unit_name_length_is_limited_as_systemd_limits_it()
    {
        // 239 + "-reapply.service": the helper's name is at systemd's limit of 255.
        Assert.Equal(new string('n', 239) + ".service", ServiceNames.Resolve(new string('n', 239), null));
        Assert.Equal(255, ServiceNames.ReapplyName(new string('n', 239) + ".service").Length);
        Assert.Equal("InvalidUnitName", Assert.Throws<NetfilterException>(() => ServiceNames.Resolve(new string('n', 240), null)).ErrorId);
    }

    [Fact]
    public void A_name_that_is_another_units_reapply_helper_is_refused()
    {
        Assert.Equal("psnetfilter-reapply.service", ServiceNames.ReapplyName("psnetfilter.service"));
        Assert.Equal("InvalidUnitName", Assert.Throws<NetfilterException>(() => ServiceNames.Resolve("psnetfilter-reapply", null)).ErrorId);
        Assert.Equal("InvalidUnitName", Assert.Throws<NetfilterException>(() => ServiceNames.Resolve(null, "x-reapply")).ErrorId);
        Assert.Equal("web-reapply2.service", ServiceNames.Resolve("web-reapply2", null));
    }

    [Fact]
    public void Header_reads_back()
    {
        var info = BootSetReader.Parse(BootScript.Generate(Set("edge.service", "gw1")));
        Assert.NotNull(info);
        Assert.Equal("edge.service", info!.UnitName);
        Assert.Equal("gw1", info.NetworkNamespace);
        Assert.Equal(new[] { "dns", "ssh.direct", "web", "web6" }, info.ForwardNames);
        Assert.Null(BootSetReader.Parse("#!/bin/sh\necho hello\n"));
        Assert.Null(BootSetReader.Parse(BootScript.Generate(Set()).Replace("# psnf-boot-set: 1", "# psnf-boot-set: 2", StringComparison.Ordinal)));
        Assert.Null(BootSetReader.Parse(BootScript.Generate(Set()).Replace("# psnf-forward: web ", "# psnf-forward: w$b ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Script_is_valid_posix_sh()
    {
        var path = Path.Combine(Path.GetTempPath(), "psnfp-syntax-" + Guid.NewGuid().ToString("n") + ".sh");
        File.WriteAllText(path, BootScript.Generate(Set()));
        try
        {
            Assert.Equal(0, Run("/bin/sh", "-n", path).Code);
            if (File.Exists("/bin/bash"))
            {
                Assert.Equal(0, Run("/bin/bash", "--posix", "-n", path).Code);
            }

            var usage = Run("/bin/sh", path, "bogus");
            Assert.Equal(2, usage.Code);
            Assert.Contains("usage", usage.Output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("-A PSNF-FWD-08A -m conntrack --ctstate DNAT -m comment --comment \"psnf:v1:ssh.direct:fwd\" -j ACCEPT", true)]
    [InlineData("-A PSNF-FWD-08A -m conntrack --ctstate DNAT -m comment --comment psnf:v1:ssh.direct:fwd -j ACCEPT", true)]
    [InlineData("-A PSNF-FWD-08A -m comment --comment \"psnf:v1:sshXdirect:fwd\" -j ACCEPT", false)] // '.' is literal
    [InlineData("-A PSNF-FWD-08A -m comment --comment \"psnf:v1:ssh.directly:fwd\" -j ACCEPT", false)]
    [InlineData("-A PSNF-PRE-T1F9 -m comment --comment \"psnf:v1:web:dnat:snat:\" -j DNAT", true)]
    [InlineData("-A PSNF-PRE-T1F9 -m comment --comment \"psnf:v1:web6:dnat:snat:\" -j DNAT", false)]
    [InlineData("-A PSNF-PRE-T1F9 -m comment --comment \"xpsnf:v1:web:dnat:snat:\" -j DNAT", false)]
    [InlineData("-A PSNF-PRE-T1F9 -p tcp -m tcp --dport 8080:8095 -j PSNF-PRE-T1F9", false)]
    public void Saved_name_patterns_match_only_the_saved_names(string line, bool saved)
    {
        var script = BootScript.Generate(Set("psnetfilter.service", null, Web, SshDirect));
        var start = script.IndexOf("psnf_saved() {", StringComparison.Ordinal);
        var end = script.IndexOf("\n}\n", start, StringComparison.Ordinal) + 3;
        var r = Run("/bin/sh", "-c", script[start..end] + "psnf_saved \"$1\"", "sh", line);
        Assert.Equal(saved ? 0 : 1, r.Code);
    }

    [Theory]
    // Live exactly as printed: nothing to do, whatever the order of the live lines.
    [InlineData("nat -A P -c \"psnf:v1:web:dnat\"|filter -A F -c \"psnf:v1:web:fwd\"|nat -A P -c \"psnf:v1:dns:dnat\"", "nat -A P -c \"psnf:v1:dns:dnat\"|filter -A F -c \"psnf:v1:web:fwd\"|nat -A P -c \"psnf:v1:web:dnat\"", " ", "web dns")]
    // A rule missing, one changed, one moved to another chain, one copy too many: each names only its forward.
    [InlineData("nat -A P -c \"psnf:v1:web:dnat\"|filter -A F -c \"psnf:v1:web:fwd\"|nat -A P -c \"psnf:v1:dns:dnat\"", "nat -A P -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", " web ", "dns")]
    [InlineData("nat -A P -d 1 -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", "nat -A P -d 2 -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", " web ", "dns")]
    [InlineData("nat -A P -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", "nat -A Q -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", " web ", "dns")]
    [InlineData("nat -A P -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", "nat -A P -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", " dns ", "web")]
    // Nothing live (at boot): every name is restored.
    [InlineData("nat -A P -c \"psnf:v1:web:dnat\"|nat -A P -c \"psnf:v1:dns:dnat\"", "", " dns web ", "")]
    public void Compare_names_exactly_the_forwards_whose_live_rules_are_not_as_saved(string expect, string live, string diff, string kept)
    {
        var script = BootScript.Generate(Set());
        var start = script.IndexOf("psnf_name() {", StringComparison.Ordinal);
        var end = script.IndexOf("# psnf_main ", start, StringComparison.Ordinal);
        string Lines(string s) => s.Length == 0 ? string.Empty : string.Join(string.Empty, s.Split('|').Select(l => l + "\n"));
        var r = Run("/bin/sh", "-c", "psnf_nl='\n'\n" + script[start..end] + "psnf_expect=$1 psnf_live=$2\npsnf_compare 'web dns' && printf '%s/%s' \"$psnf_diff\" \"$psnf_kept\"", "sh", Lines(expect), Lines(live));
        Assert.Equal(0, r.Code);
        Assert.Equal(diff + "/" + kept, r.Output);
    }

    [Fact]
    public void Pick_keeps_the_deletes_and_rules_of_the_names_to_restore_and_counts_the_deletes()
    {
        var script = BootScript.Generate(Set());
        var start = script.IndexOf("psnf_name() {", StringComparison.Ordinal);
        var end = script.IndexOf("# psnf_main ", start, StringComparison.Ordinal);
        var r = Run(
            "/bin/sh",
            "-c",
            "psnf_nl='\n'\n" + script[start..end] + "psnf_diff=' web -A ' psnf_count=0\npsnf_pick \"$1\"\nprintf '%s' \"$psnf_o\"\npsnf_pick \"$2\"\nprintf '%s%s' \"$psnf_o\" \"$psnf_count\"",
            "sh",
            "=web -D P 3\n=dns -D P 2\n=-A -D P 5\n=web -D P 1\n",
            "-A P -c psnf:v1:dns:dnat -j DNAT\n-A P -c \"psnf:v1:web:dnat:snat:\" -j DNAT\n");
        Assert.Equal(0, r.Code);
        Assert.Equal("-D P 3\n-D P 5\n-D P 1\n-A P -c \"psnf:v1:web:dnat:snat:\" -j DNAT\n3", r.Output);
    }

    internal static (int Code, string Output) Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.GetAwaiter().GetResult() + error);
    }

    /// <summary>The lines of a NAME='...' assignment in the script (empty for '').</summary>
    private static string[] Variable(string script, string name)
    {
        var start = script.IndexOf("\n" + name + "='", StringComparison.Ordinal);
        Assert.True(start >= 0, $"{name} is not assigned");
        start += name.Length + 3;
        var end = script.IndexOf('\'', start);
        var value = script[start..end];
        return value.Length == 0 ? Array.Empty<string>() : value.Split('\n');
    }
}
