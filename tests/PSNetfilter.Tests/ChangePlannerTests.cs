using System.Text.RegularExpressions;
using CsCheck;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

public partial class ChangePlannerTests
{
    private static RestorePayload Plan(string text, IEnumerable<PortForwardDefinition>? add = null, Func<OwnedState, IEnumerable<PortForward>>? remove = null, IpFamily family = IpFamily.IPv4)
    {
        var rs = IptablesSaveParser.Parse(text, family);
        var state = ForwardReader.Read(rs, null);
        var payload = ChangePlanner.Plan(rs, state, (add ?? Array.Empty<PortForwardDefinition>()).ToList(), (remove?.Invoke(state) ?? Array.Empty<PortForward>()).ToList());
        AssertOnlyTouchesModuleChains(payload);
        return payload;
    }

    /// <summary>Plans against the kernel's current state and applies the payload to it.</summary>
    private static RestorePayload PlanAndApply(FakeKernel kernel, IEnumerable<PortForwardDefinition>? add = null, Func<OwnedState, IEnumerable<PortForward>>? remove = null)
    {
        var payload = Plan(kernel.Save(), add, remove, kernel.Family);
        if (!payload.IsEmpty)
        {
            kernel.Apply(payload.Text);
        }

        return payload;
    }

    private static string[] Lines(RestorePayload p) => p.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static string Rule(PortForwardDefinition d, ForwardPart role)
    {
        var r = RuleLayout.Render(d).Single(x => x.Role == role);
        return $"-A {r.Chain} {r.Spec}";
    }

    /// <summary>
    /// Every line is a table header, COMMIT, or names a PSNF chain; a built-in chain appears only in a jump to
    /// its own PSNF chain; appended rules end in a NAT/ACCEPT target or a jump to a dispatch chain.
    /// </summary>
    internal static void AssertOnlyTouchesModuleChains(RestorePayload payload)
    {
        foreach (var line in payload.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.True(AllowedLine().IsMatch(line), $"payload line names a chain the module does not own: {line}");
            if (line.StartsWith("-A ", StringComparison.Ordinal))
            {
                Assert.Matches(@" -j (DNAT --to-destination \S+|SNAT --to-source \S+|MASQUERADE|ACCEPT|PSNF-(PRE-[TU]|OUT-[TU]|POST-|FWD-)[0-9A-F]{1,3})$", line);
            }

            Assert.DoesNotContain(" -F", line);
            Assert.DoesNotContain("-P ", line);
        }
    }

    [GeneratedRegex(@"^(?:\*(?:nat|filter)|COMMIT|:PSNF-[A-Z0-9-]+ - \[0:0\]|-A PSNF-[A-Z0-9-]+ .+|-D PSNF-[A-Z0-9-]+ [1-9][0-9]*|-X PSNF-[A-Z0-9-]+|-I (?<b>PREROUTING|OUTPUT|POSTROUTING|FORWARD) 1 -j PSNF-\k<b>|-D (?<c>PREROUTING|OUTPUT|POSTROUTING|FORWARD) -j PSNF-\k<c>)\z")]
    private static partial Regex AllowedLine();

    /// <summary>The module's state is tidy: no empty dispatch chain, every dispatch chain reached by exactly one jump.</summary>
    private static void AssertTidy(FakeKernel kernel)
    {
        var rs = kernel.Parse();
        foreach (var table in rs.Tables)
        {
            foreach (var chain in table.Chains.Where(c => RuleLayout.IsDispatchChain(c.Name)))
            {
                Assert.True(table.Rules.Any(r => r.Chain == chain.Name), $"dispatch chain {chain.Name} is empty");
                Assert.Equal(1, table.Rules.Count(r => RuleLayout.DispatchTarget(r.Spec) == chain.Name));
            }

            foreach (var hook in RuleLayout.Hooks.Where(h => h.Table == table.Name))
            {
                var jumps = table.Rules.Count(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec);
                Assert.Equal(table.HasChain(hook.Chain) ? 1 : 0, jumps);
                if (jumps == 1)
                {
                    Assert.Equal(1, table.Rules.First(r => r.Chain == hook.BuiltinChain && r.Spec == hook.JumpSpec).Position);
                }
            }
        }
    }

    [Fact]
    public void Adding_to_an_empty_ruleset_declares_chains_inserts_jumps_then_appends()
    {
        var payload = Plan(string.Empty, new[] { Defs.Web });

        // Rule by rule: the hooked chain and its jump, the dispatch chains and jumps down to the leaf, the rule.
        Assert.Equal(
            new[]
            {
                "*nat",
                ":PSNF-PREROUTING - [0:0]",
                "-I PREROUTING 1 -j PSNF-PREROUTING",
                ":PSNF-PRE-T1 - [0:0]",
                "-A PSNF-PREROUTING -p tcp -m tcp --dport 4096:8191 -j PSNF-PRE-T1",
                ":PSNF-PRE-T1F - [0:0]",
                "-A PSNF-PRE-T1 -p tcp -m tcp --dport 7936:8191 -j PSNF-PRE-T1F",
                ":PSNF-PRE-T1F9 - [0:0]",
                "-A PSNF-PRE-T1F -p tcp -m tcp --dport 8080:8095 -j PSNF-PRE-T1F9",
                Rule(Defs.Web, ForwardPart.Dnat),
                ":PSNF-POSTROUTING - [0:0]",
                "-I POSTROUTING 1 -j PSNF-POSTROUTING",
                ":PSNF-POST-1 - [0:0]",
                "-A PSNF-POSTROUTING -m conntrack --ctorigdstport 4096:8191 -j PSNF-POST-1",
                ":PSNF-POST-1F - [0:0]",
                "-A PSNF-POST-1 -m conntrack --ctorigdstport 7936:8191 -j PSNF-POST-1F",
                ":PSNF-POST-1F9 - [0:0]",
                "-A PSNF-POST-1F -m conntrack --ctorigdstport 8080:8095 -j PSNF-POST-1F9",
                Rule(Defs.Web, ForwardPart.Snat),
                "COMMIT",
                "*filter",
                ":PSNF-FORWARD - [0:0]",
                "-I FORWARD 1 -j PSNF-FORWARD",
                ":PSNF-FWD-1 - [0:0]",
                "-A PSNF-FORWARD -m conntrack --ctorigdstport 4096:8191 -j PSNF-FWD-1",
                ":PSNF-FWD-1F - [0:0]",
                "-A PSNF-FWD-1 -m conntrack --ctorigdstport 7936:8191 -j PSNF-FWD-1F",
                ":PSNF-FWD-1F9 - [0:0]",
                "-A PSNF-FWD-1F -m conntrack --ctorigdstport 8080:8095 -j PSNF-FWD-1F9",
                Rule(Defs.Web, ForwardPart.Forward),
                "COMMIT",
            },
            Lines(payload));
        Assert.EndsWith("COMMIT\n", payload.Text);
        Assert.Equal(IpFamily.IPv4, payload.Family);
    }

    [Fact]
    public void The_first_payload_applies_and_reads_back()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanAndApply(kernel, new[] { Defs.Web, Defs.Dns, Defs.SshDirect });
        var state = ForwardReader.Read(kernel.Parse(), null);
        Assert.Equal(new[] { Defs.Dns, Defs.SshDirect, Defs.Web }, state.Forwards.Select(f => f.Definition));
        Assert.All(state.Forwards, f => Assert.Equal("Complete", f.Status));
        Assert.Empty(state.UntaggedRules); // dispatch jumps are not "untagged rules"
        Assert.Empty(state.Warnings);
        AssertTidy(kernel);
    }

    [Fact]
    public void Adding_to_a_foreign_only_ruleset_also_creates_chains_and_jumps()
    {
        foreach (var backend in Golden.Backends)
        {
            var lines = Lines(Plan(Golden.Read(backend, "foreign-only.v4.save"), new[] { Defs.Web, Defs.Dns }));
            Assert.Equal(
                new[] { "-I PREROUTING 1 -j PSNF-PREROUTING", "-I POSTROUTING 1 -j PSNF-POSTROUTING", "-I FORWARD 1 -j PSNF-FORWARD" },
                lines.Where(l => l.StartsWith("-I ", StringComparison.Ordinal)));
            Assert.Contains(":PSNF-PREROUTING - [0:0]", lines);
            Assert.Equal(6, lines.Count(l => l.Contains(" psnf:v1:", StringComparison.Ordinal)));
            Assert.Equal(new[] { "*nat", "*filter" }, lines.Where(l => l.StartsWith('*')));
        }
    }

    [Fact]
    public void Only_the_needed_hooks_are_created()
    {
        var lines = Lines(Plan(string.Empty, new[] { Defs.SshDirect }));
        Assert.DoesNotContain(":PSNF-POSTROUTING - [0:0]", lines);
        Assert.DoesNotContain("-I POSTROUTING 1 -j PSNF-POSTROUTING", lines);
        Assert.DoesNotContain("-I OUTPUT 1 -j PSNF-OUTPUT", lines);
        Assert.Contains(":PSNF-PREROUTING - [0:0]", lines);
        Assert.Contains(":PSNF-FORWARD - [0:0]", lines);

        var local = PortForwardDefinition.Create("l", Protocol.Tcp, null, 8080, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, null, new ForwardExtras(IncludeLocal: true));
        var withLocal = Lines(Plan(string.Empty, new[] { local }));
        Assert.Contains(":PSNF-OUTPUT - [0:0]", withLocal);
        Assert.Contains("-I OUTPUT 1 -j PSNF-OUTPUT", withLocal);
        Assert.Contains("-A PSNF-OUTPUT -p tcp -m tcp --dport 4096:8191 -j PSNF-OUT-T1", withLocal);
    }

    [Fact]
    public void Adding_beside_an_existing_forward_in_the_same_leaf_only_appends_its_rules()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanAndApply(kernel, new[] { Defs.Web });
        var web2 = PortForwardDefinition.Create("web2", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8081, Defs.Ip("198.51.100.10"), null, SnatMode.Snat, Defs.Ip("198.51.100.1"), null);

        var lines = Lines(PlanAndApply(kernel, new[] { web2 }));

        Assert.Equal(new[] { "*nat", Rule(web2, ForwardPart.Dnat), Rule(web2, ForwardPart.Snat), "COMMIT", "*filter", Rule(web2, ForwardPart.Forward), "COMMIT" }, lines);
        Assert.Equal(2, ForwardReader.Read(kernel.Parse(), null).Forwards.Count);
        AssertTidy(kernel);
    }

    [Fact]
    public void Adding_in_a_new_port_range_adds_only_the_missing_dispatch_chains()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanAndApply(kernel, new[] { Defs.Web }); // 8080 = 0x1F90
        var far = Defs.Simple("far", 8200, SnatMode.None); // 0x2008: new top-level bucket 2
        var near = Defs.Simple("near", 7000, SnatMode.None); // 0x1B58: bucket 1 exists, 1B does not

        var farLines = Lines(PlanAndApply(kernel, new[] { far }));
        Assert.DoesNotContain(farLines, l => l.StartsWith("-I", StringComparison.Ordinal) || l is ":PSNF-PREROUTING - [0:0]" or ":PSNF-FORWARD - [0:0]");
        Assert.Contains(":PSNF-PRE-T2 - [0:0]", farLines);
        Assert.Contains("-A PSNF-PREROUTING -p tcp -m tcp --dport 8192:12287 -j PSNF-PRE-T2", farLines);

        var nearLines = Lines(PlanAndApply(kernel, new[] { near }));
        Assert.DoesNotContain(":PSNF-PRE-T1 - [0:0]", nearLines); // declaring an existing chain would flush it
        Assert.Contains(":PSNF-PRE-T1B - [0:0]", nearLines);
        Assert.Contains("-A PSNF-PRE-T1 -p tcp -m tcp --dport 6912:7167 -j PSNF-PRE-T1B", nearLines);
        Assert.DoesNotContain(nearLines, l => l.StartsWith("-A PSNF-PREROUTING", StringComparison.Ordinal));

        Assert.Equal(new[] { "far", "near", "web" }, ForwardReader.Read(kernel.Parse(), null).Forwards.Select(f => f.Name));
        AssertTidy(kernel);
    }

    [Fact]
    public void Adding_under_the_old_flat_layout_keeps_the_hooked_chains()
    {
        foreach (var backend in Golden.Backends)
        {
            var kernel = new FakeKernel(IpFamily.IPv4, Golden.Read(backend, "owned.v4.save"));
            var lines = Lines(PlanAndApply(kernel, new[] { Defs.Simple("extra", 9000) }));
            Assert.DoesNotContain(lines, l => l.StartsWith("-I", StringComparison.Ordinal) || l.StartsWith(":PSNF-PREROUTING", StringComparison.Ordinal) || l.StartsWith(":PSNF-FORWARD", StringComparison.Ordinal));
            Assert.Equal(new[] { "dns", "extra", "ssh.direct", "web" }, ForwardReader.Read(kernel.Parse(), null).Forwards.Select(f => f.Name));
        }
    }

    [Fact]
    public void A_missing_jump_is_inserted_even_when_the_chain_exists()
    {
        var text = Golden.Read("nft", "owned-only.v4.save").Replace("[0:0] -A FORWARD -j PSNF-FORWARD\n", string.Empty, StringComparison.Ordinal);
        var lines = Lines(Plan(text, new[] { Defs.Simple("extra", 9000) }));
        Assert.Contains("-I FORWARD 1 -j PSNF-FORWARD", lines);
        Assert.DoesNotContain(":PSNF-FORWARD - [0:0]", lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("-I PREROUTING", StringComparison.Ordinal) || l.StartsWith("-I POSTROUTING", StringComparison.Ordinal));
    }

    [Fact]
    public void Removing_one_of_several_deletes_its_rules_by_position_and_nothing_else()
    {
        foreach (var backend in Golden.Backends)
        {
            var lines = Lines(Plan(Golden.Read(backend, "owned.v4.save"), remove: s => s.Forwards.Where(f => f.Name == "dns")));
            Assert.Equal(new[] { "*nat", "-D PSNF-POSTROUTING 2", "-D PSNF-PREROUTING 2", "COMMIT", "*filter", "-D PSNF-FORWARD 2", "COMMIT" }, lines);
        }
    }

    [Fact]
    public void Deletes_run_from_the_highest_position_down()
    {
        var lines = Lines(Plan(Golden.Read("legacy", "owned.v4.save"), remove: s => s.Forwards.Where(f => f.Name is "web" or "ssh.direct")));
        Assert.Equal(new[] { "*nat", "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 3", "-D PSNF-PREROUTING 1", "COMMIT", "*filter", "-D PSNF-FORWARD 3", "-D PSNF-FORWARD 1", "COMMIT" }, lines);
    }

    [Fact]
    public void Removing_the_last_forwards_removes_rules_jumps_and_chains()
    {
        foreach (var backend in Golden.Backends)
        {
            foreach (var file in new[] { "owned.v4.save", "owned-only.v4.save" })
            {
                var lines = Lines(Plan(Golden.Read(backend, file), remove: s => s.Forwards));
                Assert.Equal(
                    new[]
                    {
                        "*nat",
                        "-D PSNF-POSTROUTING 2", "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 3", "-D PSNF-PREROUTING 2", "-D PSNF-PREROUTING 1",
                        "-D PREROUTING -j PSNF-PREROUTING", "-X PSNF-PREROUTING",
                        "-D POSTROUTING -j PSNF-POSTROUTING", "-X PSNF-POSTROUTING",
                        "COMMIT",
                        "*filter",
                        "-D PSNF-FORWARD 3", "-D PSNF-FORWARD 2", "-D PSNF-FORWARD 1",
                        "-D FORWARD -j PSNF-FORWARD", "-X PSNF-FORWARD",
                        "COMMIT",
                    },
                    lines);
            }
        }
    }

    [Fact]
    public void Removing_everything_returns_the_foreign_ruleset_byte_for_byte()
    {
        foreach (var backend in Golden.Backends)
        {
            var foreign = Golden.Read(backend, "foreign-only.v4.save");
            var kernel = new FakeKernel(IpFamily.IPv4, foreign);
            var before = kernel.Save();
            PlanAndApply(kernel, new[] { Defs.Web, Defs.Dns, Defs.SshDirect, Defs.Simple("hi", 65535), Defs.Simple("lo", 1, SnatMode.None) });
            AssertTidy(kernel);
            PlanAndApply(kernel, remove: s => s.Forwards);
            Assert.Equal(before, kernel.Save());
            Assert.Empty(kernel.ModuleChains());
        }
    }

    [Fact]
    public void Emptied_dispatch_chains_go_deepest_first_with_their_jumps()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        var web2 = Defs.Simple("web2", 8081);
        PlanAndApply(kernel, new[] { Defs.Web, web2, Defs.Dns });

        // web2 shares its leaves with web: removing it deletes only its own rules.
        var first = Lines(PlanAndApply(kernel, remove: s => s.Forwards.Where(f => f.Name == "web2")));
        Assert.All(first.Where(l => l.StartsWith('-')), l => Assert.Matches(@"^-D PSNF-(PRE-T|POST-|FWD-)1F9 2$", l));

        // web was the last tcp forward under 0x1xxx: its PREROUTING leaf and the chains above it go, deepest
        // first; POSTROUTING and FORWARD key on the port alone, so dns (udp 5353 = 0x14E9) keeps POST-1 and FWD-1.
        var second = Lines(PlanAndApply(kernel, remove: s => s.Forwards.Where(f => f.Name == "web")));
        var x = second.Where(l => l.StartsWith("-X", StringComparison.Ordinal)).ToList();
        Assert.Equal(
            new[] { "-X PSNF-PRE-T1F9", "-X PSNF-PRE-T1F", "-X PSNF-PRE-T1", "-X PSNF-POST-1F9", "-X PSNF-POST-1F", "-X PSNF-FWD-1F9", "-X PSNF-FWD-1F" }.Order(StringComparer.Ordinal),
            x.Select(l => l).Order(StringComparer.Ordinal));
        Assert.True(x.IndexOf("-X PSNF-PRE-T1F9") < x.IndexOf("-X PSNF-PRE-T1F"));
        Assert.True(x.IndexOf("-X PSNF-PRE-T1F") < x.IndexOf("-X PSNF-PRE-T1"));
        Assert.DoesNotContain(second, l => l.Contains("PSNF-PRE-U1", StringComparison.Ordinal) || l.Contains("-X PSNF-PREROUTING", StringComparison.Ordinal));
        Assert.Contains(kernel.ModuleChains(), c => c == "PSNF-PRE-U14E");
        Assert.DoesNotContain(kernel.ModuleChains(), c => c.StartsWith("PSNF-PRE-T", StringComparison.Ordinal));
        Assert.Equal(new[] { "dns" }, ForwardReader.Read(kernel.Parse(), null).Forwards.Select(f => f.Name));
        AssertTidy(kernel);
    }

    [Fact]
    public void Removing_the_last_v6_forward_cleans_up_the_v6_tables()
    {
        var lines = Lines(Plan(Golden.Read("nft", "owned.v6.save"), remove: s => s.Forwards, family: IpFamily.IPv6));
        Assert.Contains("-X PSNF-PREROUTING", lines);
        Assert.Contains("-X PSNF-POSTROUTING", lines);
        Assert.Contains("-X PSNF-FORWARD", lines);
        Assert.Contains("-D PSNF-FORWARD 1", lines);
    }

    [Fact]
    public void An_untagged_rule_in_a_module_chain_keeps_that_chain_and_its_jump()
    {
        var text = Golden.Read("nft", "owned-only.v4.save").Replace(
            "COMMIT\n*nat", "[0:0] -A PSNF-FORWARD -s 192.0.2.0/24 -j ACCEPT\nCOMMIT\n*nat", StringComparison.Ordinal);
        var lines = Lines(Plan(text, remove: s => s.Forwards));

        Assert.DoesNotContain("-X PSNF-FORWARD", lines);
        Assert.DoesNotContain("-D FORWARD -j PSNF-FORWARD", lines);
        Assert.DoesNotContain("-D PSNF-FORWARD 4", lines); // the hand-made rule
        Assert.Equal(new[] { "-D PSNF-FORWARD 3", "-D PSNF-FORWARD 2", "-D PSNF-FORWARD 1" }, lines.Where(l => l.StartsWith("-D PSNF-FORWARD", StringComparison.Ordinal)));
        Assert.Contains("-X PSNF-PREROUTING", lines); // the nat chains are empty afterwards: they go
        Assert.Contains("-X PSNF-POSTROUTING", lines);
    }

    [Fact]
    public void An_untagged_rule_in_a_dispatch_leaf_keeps_the_leaf_and_its_path()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanAndApply(kernel, new[] { Defs.Web });
        kernel.Apply("*filter\n-A PSNF-FWD-1F9 -s 192.0.2.0/24 -j ACCEPT\nCOMMIT\n");

        var lines = Lines(PlanAndApply(kernel, remove: s => s.Forwards));

        Assert.DoesNotContain(lines, l => l.Contains("-X PSNF-FWD", StringComparison.Ordinal) || l == "-X PSNF-FORWARD" || l == "-D FORWARD -j PSNF-FORWARD");
        Assert.Contains("-X PSNF-PRE-T1F9", lines);
        Assert.Equal(new[] { "PSNF-FORWARD", "PSNF-FWD-1", "PSNF-FWD-1F", "PSNF-FWD-1F9" }, kernel.ModuleChains().Order(StringComparer.Ordinal));
        var state = ForwardReader.Read(kernel.Parse(), null);
        Assert.Empty(state.Forwards);
        Assert.Equal("-s 192.0.2.0/24 -j ACCEPT", Assert.Single(state.UntaggedRules).Spec);
    }

    [Fact]
    public void A_doubled_jump_is_deleted_twice()
    {
        // Loading owned.v4.rules twice leaves two jumps (Golden/README.md).
        var text = Golden.Read("nft", "owned-only.v4.save").Replace(
            "[0:0] -A FORWARD -j PSNF-FORWARD\n", "[0:0] -A FORWARD -j PSNF-FORWARD\n[0:0] -A FORWARD -j PSNF-FORWARD\n", StringComparison.Ordinal);
        var lines = Lines(Plan(text, remove: s => s.Forwards));
        Assert.Equal(2, lines.Count(l => l == "-D FORWARD -j PSNF-FORWARD"));
        var kernel = new FakeKernel(IpFamily.IPv4, text);
        kernel.Apply(string.Join('\n', lines) + "\n");
        Assert.Empty(kernel.ModuleChains());
    }

    [Fact]
    public void Replacing_deletes_the_old_rules_and_adds_the_new_without_touching_hooks()
    {
        var kernel = new FakeKernel(IpFamily.IPv4, Golden.Read("nft", "owned-only.v4.save"));
        var newWeb = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8080, Defs.Ip("198.51.100.11"), 80, SnatMode.Masquerade, null, null);
        var lines = Lines(PlanAndApply(kernel, new[] { newWeb }, s => s.Forwards.Where(f => f.Name == "web")));

        Assert.Equal(new[] { "-D PSNF-POSTROUTING 1", "-D PSNF-PREROUTING 1", "-D PSNF-FORWARD 1" }, lines.Where(l => l.StartsWith("-D", StringComparison.Ordinal)));
        Assert.Contains(Rule(newWeb, ForwardPart.Dnat), lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("-X", StringComparison.Ordinal) || l.StartsWith("-I", StringComparison.Ordinal) || l.StartsWith(":PSNF-PREROUTING", StringComparison.Ordinal));
        Assert.Equal(newWeb, ForwardReader.Read(kernel.Parse(), null).Forwards.Single(f => f.Name == "web").Definition);
    }

    [Fact]
    public void Replacing_in_the_same_leaf_keeps_the_leaf()
    {
        var kernel = new FakeKernel(IpFamily.IPv4);
        PlanAndApply(kernel, new[] { Defs.Web });
        var moved = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8081, Defs.Ip("198.51.100.10"), null, SnatMode.Masquerade, null, null);
        var lines = Lines(PlanAndApply(kernel, new[] { moved }, s => s.Forwards));
        Assert.DoesNotContain(lines, l => l.StartsWith("-X", StringComparison.Ordinal) || l.StartsWith(':'));
        Assert.Contains("-X", string.Join('\n', Lines(Plan(kernel.Save(), remove: s => s.Forwards)))); // and removing it later still cleans up
        AssertTidy(kernel);

        // Going to SnatMode None empties the POSTROUTING leaf: that path goes, the others stay.
        var none = PortForwardDefinition.Create("web", Protocol.Tcp, Defs.Ip("203.0.113.1"), 8081, Defs.Ip("198.51.100.10"), null, SnatMode.None, null, null);
        var x = Lines(PlanAndApply(kernel, new[] { none }, s => s.Forwards)).Where(l => l.StartsWith("-X", StringComparison.Ordinal));
        Assert.Equal(new[] { "-X PSNF-POST-1F9", "-X PSNF-POST-1F", "-X PSNF-POST-1" }, x);
        AssertTidy(kernel);
    }

    [Fact]
    public void Definitions_of_the_other_family_are_left_out()
    {
        var payload = Plan(string.Empty, new[] { Defs.Web6 });
        Assert.True(payload.IsEmpty);
        Assert.Equal(string.Empty, payload.Text);

        var v6 = Plan(string.Empty, new[] { Defs.Web6, Defs.Web }, family: IpFamily.IPv6);
        Assert.Contains(Rule(Defs.Web6, ForwardPart.Dnat), Lines(v6));
        Assert.DoesNotContain(Lines(v6), l => l.Contains("psnf:v1:web:", StringComparison.Ordinal));
    }

    [Fact]
    public void Nothing_to_do_gives_an_empty_payload()
    {
        Assert.True(Plan(Golden.Read("nft", "owned.v4.save")).IsEmpty);
        Assert.True(Plan(string.Empty).IsEmpty);
    }

    [Fact]
    public void Locate_maps_a_line_number_to_the_forward_that_wrote_it()
    {
        var a = Defs.Simple("a", 9000);
        var b = Defs.Simple("b", 9001);
        var payload = Plan(Golden.Read("nft", "owned-only.v4.save"), new[] { a, b }, s => s.Forwards.Where(f => f.Name == "dns"));
        var lines = Lines(payload);

        for (var i = 0; i < lines.Length; i++)
        {
            var (owner, line) = payload.Locate(i + 1);
            Assert.Equal(lines[i], line);
            var expected = lines[i].Contains("psnf:v1:a:", StringComparison.Ordinal) ? "a"
                : lines[i].Contains("psnf:v1:b:", StringComparison.Ordinal) ? "b"
                : Regex.IsMatch(lines[i], @"^-D PSNF-[A-Z]+ \d+$") ? "dns"
                : null;
            Assert.Equal(expected, owner);
        }

        Assert.Equal((null, "*nat"), payload.Locate(1));
        Assert.Equal((null, null), payload.Locate(0));
        Assert.Equal((null, null), payload.Locate(lines.Length + 1));
        Assert.Equal((string?)"b", payload.Locate(Array.FindIndex(lines, l => l.Contains("psnf:v1:b:fwd", StringComparison.Ordinal)) + 1).Owner);
    }

    [Fact]
    public void Payload_refuses_a_line_break()
    {
        var payload = new RestorePayload(IpFamily.IPv4);
        Assert.Throws<InvalidOperationException>(() => payload.Add("nat", "-A PSNF-PREROUTING -j ACCEPT\n-F"));
        Assert.Throws<InvalidOperationException>(() => payload.Add("nat", "-A PSNF-PREROUTING -j ACCEPT\r"));
        Assert.True(payload.IsEmpty);
    }

    [Fact]
    public void Payload_groups_lines_per_table_nat_first()
    {
        var payload = new RestorePayload(IpFamily.IPv4);
        payload.Add("filter", "-A PSNF-FORWARD -j ACCEPT", "f");
        payload.Add("nat", "-A PSNF-PREROUTING -j ACCEPT", "n");
        payload.Add("filter", "-D PSNF-FORWARD 1");
        Assert.Equal("*nat\n-A PSNF-PREROUTING -j ACCEPT\nCOMMIT\n*filter\n-A PSNF-FORWARD -j ACCEPT\n-D PSNF-FORWARD 1\nCOMMIT\n", payload.Text);
        Assert.Equal(("n", "-A PSNF-PREROUTING -j ACCEPT"), payload.Locate(2));
        Assert.Equal(("f", "-A PSNF-FORWARD -j ACCEPT"), payload.Locate(5));
        Assert.Equal(3, payload.LineCount);
    }

    [Fact]
    public void The_allowed_line_check_itself_rejects_foreign_chains()
    {
        foreach (var (table, line) in new[] { ("filter", "-D DOCKER-USER 1"), ("nat", "-I PREROUTING 1 -j PSNF-POSTROUTING"), ("nat", "-A PSNF-PREROUTING -j DOCKER"), ("filter", "-F FORWARD") })
        {
            var payload = new RestorePayload(IpFamily.IPv4);
            payload.Add(table, line);
            Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertOnlyTouchesModuleChains(payload));
        }
    }

    /// <summary>
    /// Model-based: any sequence of adds and removes, planned against the live state and applied by the model
    /// kernel, keeps the forwards equal to the model, the tree tidy and the foreign rules untouched, and
    /// removing everything restores the foreign ruleset exactly.
    /// </summary>
    [Fact]
    public void Any_sequence_of_changes_keeps_the_kernel_consistent()
    {
        var foreign = Golden.Read("legacy", "foreign-only.v4.save");
        var portGen = Gen.Frequency((3, Gen.Int[8060, 8100]), (2, Gen.Int[1, 65535]), (1, Gen.OneOfConst(1, 15, 16, 255, 256, 4095, 4096, 65535)));
        var defGen =
            from n in Gen.Int[0, 7]
            from port in portGen
            from span in Gen.Frequency((4, Gen.Const(0)), (1, Gen.Int[1, 40]))
            from mode in Gen.OneOfConst(SnatMode.Snat, SnatMode.Masquerade, SnatMode.None)
            from udp in Gen.Bool
            from local in Gen.Frequency((5, Gen.Const(false)), (1, Gen.Const(true)))
            select PortForwardDefinition.Create(
                "f" + n, udp ? Protocol.Udp : Protocol.Tcp, null, Math.Min(port, 65535 - span), Defs.Ip("198.51.100." + (10 + n)), null, mode,
                mode == SnatMode.Snat ? Defs.Ip("198.51.100.1") : null, null, new ForwardExtras(ExternalPortEnd: Math.Min(port, 65535 - span) + span, IncludeLocal: local));
        var opGen = Gen.Frequency(
            (3, defGen.Select(d => (Add: (PortForwardDefinition?)d, Remove: -1))),
            (2, Gen.Int[0, 7].Select(i => (Add: (PortForwardDefinition?)null, Remove: i))));

        opGen.Array[1, 14].Sample(
            ops =>
            {
                var kernel = new FakeKernel(IpFamily.IPv4, foreign);
                var before = kernel.Save();
                var model = new Dictionary<string, PortForwardDefinition>(StringComparer.Ordinal);
                foreach (var (add, remove) in ops)
                {
                    if (add is not null)
                    {
                        var clash = model.Values.Any(o => o.Name != add.Name && o.Protocol == add.Protocol && o.ExternalPort <= add.ExternalPortEnd && add.ExternalPort <= o.ExternalPortEnd);
                        if (clash)
                        {
                            continue; // the manager refuses overlaps before planning
                        }

                        var replace = model.ContainsKey(add.Name);
                        PlanAndApply(kernel, new[] { add }, s => s.Forwards.Where(f => replace && f.Name == add.Name));
                        model[add.Name] = add;
                    }
                    else
                    {
                        var name = "f" + remove;
                        PlanAndApply(kernel, remove: s => s.Forwards.Where(f => f.Name == name));
                        model.Remove(name);
                    }

                    var state = ForwardReader.Read(kernel.Parse(), null);
                    Assert.Equal(model.Values.OrderBy(d => d.Name, StringComparer.Ordinal), state.Forwards.Select(f => f.Definition));
                    Assert.All(state.Forwards, f => Assert.Equal("Complete", f.Status));
                    Assert.Empty(state.UntaggedRules);
                    AssertTidy(kernel);
                }

                PlanAndApply(kernel, remove: s => s.Forwards);
                Assert.Equal(before, kernel.Save());
            },
            iter: 300,
            threads: 1);
    }
}
