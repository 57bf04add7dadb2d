using System.Globalization;
using System.Net;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// Rebuilds forwards from a ruleset: looks only at rules in PSNF- chains, tokenises only those, and groups
/// them by the name in their tag. Linear in the size of the dump.
/// </summary>
public static class ForwardReader
{
    public static OwnedState Read(Ruleset ruleset, string? networkNamespace, Func<string, bool>? isPersisted = null)
    {
        var byName = new Dictionary<string, List<OwnedRule>>(StringComparer.Ordinal);
        var mirrors = new Dictionary<string, List<OwnedRule>>(StringComparer.Ordinal);
        var untagged = new List<RuleLine>();
        var warnings = new List<string>();
        foreach (var tableName in RuleLayout.Tables)
        {
            var table = ruleset.GetTable(tableName);
            if (table is null)
            {
                continue;
            }

            foreach (var rule in table.Rules)
            {
                if (!rule.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal))
                {
                    continue;
                }

                if (!rule.Spec.Contains(ForwardTag.TagPrefix, StringComparison.Ordinal))
                {
                    if (RuleLayout.DispatchTarget(rule.Spec) is null)
                    {
                        untagged.Add(rule);
                    }

                    continue;
                }

                var owned = ParseOwned(rule);
                if (owned is null)
                {
                    warnings.Add($"Ignoring a rule in {rule.Table}/{rule.Chain} whose tag cannot be read: {rule.Spec}");
                    continue;
                }

                var into = owned.Mirror ? mirrors : byName;
                if (!into.TryGetValue(owned.Name, out var list))
                {
                    into[owned.Name] = list = new List<OwnedRule>(3);
                }

                list.Add(owned);
            }
        }

        var reach = new Reachability(ruleset);
        var forwards = new List<PortForward>(byName.Count);
        foreach (var (name, rules) in byName)
        {
            var fwd = Rebuild(name, rules, ruleset.Family, networkNamespace, isPersisted?.Invoke(name) ?? false, warnings, reach.IsReachable);
            if (fwd is not null)
            {
                forwards.Add(fwd);
            }
        }

        forwards.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        var unreachableMirrors = mirrors.Where(m => m.Value.All(r => !reach.IsReachable(r.Table, r.Chain))).Select(m => m.Key).ToHashSet(StringComparer.Ordinal);
        return new OwnedState { Family = ruleset.Family, Forwards = forwards, RulesOf = byName, MirrorsOf = mirrors, UnreachableMirrors = unreachableMirrors, UntaggedRules = untagged, Warnings = warnings };
    }

    /// <summary>Tokenises one rule and reads its tag; null when it is not a readable module rule.</summary>
    public static OwnedRule? ParseOwned(RuleLine rule)
    {
        var tokens = RuleTokenizer.Split(rule.Spec);
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (t == "!")
            {
                return null; // the module never writes negations
            }

            if (t.StartsWith('-') && i + 1 < tokens.Count && !tokens[i + 1].StartsWith('-'))
            {
                // "-m" repeats; keep the rest first-wins, which is all the module writes.
                if (t != "-m")
                {
                    options.TryAdd(t, tokens[i + 1]);
                }

                i++;
            }
            else if (t.StartsWith('-'))
            {
                options.TryAdd(t, string.Empty);
            }
        }

        if (!options.TryGetValue("--comment", out var comment) || !comment.StartsWith(ForwardTag.TagPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var parts = comment[ForwardTag.TagPrefix.Length..].Split(':');
        if (parts.Length < 2 || !PortForwardDefinition.IsValidName(parts[0]))
        {
            return null;
        }

        ForwardPart? role = parts[1] switch
        {
            "dnat" when parts.Length is 4 or 5 => ForwardPart.Dnat,
            "local" when parts.Length is 2 or 3 => ForwardPart.Local,
            "hairpin" when parts.Length is 2 or 3 => ForwardPart.Hairpin,
            "snat" when parts.Length is 2 or 3 => ForwardPart.Snat,
            "fwd" or RuleLayout.MirrorRole when parts.Length is 2 or 3 => ForwardPart.Forward,
            _ => null,
        };
        return role is null ? null : new OwnedRule(parts[0], role.Value, rule, options, parts) { Mirror = parts[1] == RuleLayout.MirrorRole };
    }

    private static PortForward? Rebuild(string name, List<OwnedRule> rules, IpFamily family, string? ns, bool persisted, List<string> warnings, Func<string, string, bool> reachable)
    {
        var dnats = rules.Where(r => r.Role == ForwardPart.Dnat).ToList();
        var dnat = dnats.FirstOrDefault();
        var snat = rules.FirstOrDefault(r => r.Role == ForwardPart.Snat);
        var fwd = rules.FirstOrDefault(r => r.Role == ForwardPart.Forward);
        try
        {
            Protocol protocol;
            IPAddress? ext;
            int extPort, extEnd;
            IPAddress internalAddr;
            int internalPort, internalEnd;
            SnatMode mode;
            string? description = null;
            var sources = new List<IPNetwork>();
            string? inInterface = null;
            var includeLocal = false;

            // The flags say which DNAT-only parts the forward has; any of its rules carries them.
            var flagText = dnat is not null ? (dnat.TagParts.Length == 5 ? dnat.TagParts[4] : string.Empty)
                : rules.Select(r => r.TagParts.Length == 3 ? r.TagParts[2] : null).FirstOrDefault(t => t is not null);
            (bool Local, bool Interface, bool Description, int Sources)? flags = null;
            if (flagText is not null)
            {
                flags = ForwardTag.ParseFlags(flagText) ?? throw new FormatException("unknown flags " + flagText);
            }
            var partial = false;
            if (dnat is not null)
            {
                protocol = ParseProtocol(dnat.Options["-p"]);
                ext = dnat.Options.TryGetValue("-d", out var d) ? ParseHost(d) : null;
                (extPort, extEnd) = ParsePorts(dnat.Options["--dport"]);
                (internalAddr, internalPort, internalEnd) = ParseTarget(dnat.Options["--to-destination"]);
                mode = ForwardTag.ParseModeCode(dnat.TagParts[2]) ?? throw new FormatException("unknown SNAT mode " + dnat.TagParts[2]);
                description = ForwardTag.DecodeDescription(dnat.TagParts[3]);
                includeLocal = flags?.Local ?? false;
                inInterface = dnat.Options.TryGetValue("-i", out var i) ? i : null;
                foreach (var r in dnats)
                {
                    if (r.Options.TryGetValue("-s", out var src))
                    {
                        var n = PortForwardDefinition.ParseNetwork(src);
                        if (!sources.Contains(n))
                        {
                            sources.Add(n);
                        }
                    }
                }
            }
            else if (fwd is not null)
            {
                protocol = ParseProtocol(fwd.Options["--ctproto"]);
                ext = fwd.Options.TryGetValue("--ctorigdst", out var d) ? ParseHost(d) : null;
                (extPort, extEnd) = ParsePorts(fwd.Options["--ctorigdstport"]);
                internalAddr = ParseHost(fwd.Options["--ctreplsrc"]);
                (internalPort, internalEnd) = ParsePorts(fwd.Options["--ctreplsrcport"]);
                mode = snat is null ? SnatMode.None : SnatModeOf(snat);
            }
            else if (snat is not null)
            {
                protocol = ParseProtocol(snat.Options["-p"]);
                ext = snat.Options.TryGetValue("--ctorigdst", out var d) ? ParseHost(d) : null;
                (extPort, extEnd) = ParsePorts(snat.Options["--ctorigdstport"]);
                internalAddr = ParseHost(snat.Options["-d"]);
                (internalPort, internalEnd) = ParsePorts(snat.Options["--dport"]);
                mode = SnatModeOf(snat);
            }
            else
            {
                return null;
            }

            if (dnat is null)
            {
                // What only the DNAT rules held is gone; the flags on the other rules say whether there was any.
                includeLocal = (flags?.Local ?? false) || rules.Any(r => r.Role == ForwardPart.Local);
                partial = flags is { } f0 && (f0.Interface || f0.Description || f0.Sources > 0);
            }
            else if (flags is { Sources: > 0 } f && sources.Count < f.Sources)
            {
                partial = true; // some of the allow-list's DNAT rules are gone
            }

            IPAddress? snatAddress = null;
            if (mode == SnatMode.Snat && snat is not null && snat.Options.TryGetValue("--to-source", out var srcAddr))
            {
                snatAddress = ParseHost(srcAddr);
            }

            var hairpinRule = rules.FirstOrDefault(r => r.Role == ForwardPart.Hairpin);
            var hairpin = hairpinRule is not null && hairpinRule.Options.TryGetValue("-s", out var hs) ? PortForwardDefinition.ParseNetwork(hs) : (IPNetwork?)null;
            var hasHairpin = (flagText is not null && (ForwardTag.ParseAllFlags(flagText)?.Hairpin ?? false)) || hairpinRule is not null;
            var extras = new ForwardExtras(extEnd, internalEnd, sources, inInterface, includeLocal, mode == SnatMode.None && includeLocal ? hairpin : null);
            var def = PortForwardDefinition.CreateFromKernel(name, protocol, ext, extPort, internalAddr, internalPort, mode, snatAddress, description, extras);
            var missing = new List<ForwardPart>();
            var dup = new List<ForwardPart>();
            foreach (var role in new[] { ForwardPart.Dnat, ForwardPart.Local, ForwardPart.Snat, ForwardPart.Hairpin, ForwardPart.Forward })
            {
                var count = rules.Count(r => r.Role == role);
                var expected = role switch
                {
                    ForwardPart.Dnat => Math.Max(1, Math.Max(sources.Count, flags?.Sources ?? 0)),
                    ForwardPart.Local => includeLocal ? 1 : 0,
                    ForwardPart.Hairpin => hasHairpin ? 1 : 0,
                    ForwardPart.Snat => mode == SnatMode.None ? 0 : 1,
                    _ => 1,
                };
                if (count < expected)
                {
                    missing.Add(role);
                }
                else if (count > expected && expected > 0)
                {
                    dup.Add(role);
                }
            }

            ulong packets = 0, bytes = 0;
            foreach (var r in rules.Where(r => r.Role == ForwardPart.Forward))
            {
                packets += r.Line.Packets;
                bytes += r.Line.Bytes;
            }

            return new PortForward(def)
            {
                NetworkNamespace = ns,
                Backend = BackendCatalog.Iptables,
                MissingRules = missing,
                DuplicateRules = dup,
                Packets = packets,
                Bytes = bytes,
                Persisted = persisted,
                DefinitionPartial = partial,
                UnreachableRules = rules.Where(r => !reachable(r.Table, r.Chain)).Select(r => r.Role).Distinct().ToList(),
            };
        }
        catch (Exception ex) when (ex is FormatException or KeyNotFoundException or PortForwardValidationException)
        {
            warnings.Add($"Ignoring the rules tagged '{name}' ({family}): they cannot be read back as a forward ({ex.Message}).");
            return null;
        }
    }

    /// <summary>
    /// Whether packets can reach a module chain: a hooked chain needs its jump in the built-in chain, a
    /// dispatch chain a jump from a reachable module chain. A rule in an unreachable chain never matches.
    /// </summary>
    private sealed class Reachability
    {
        private readonly Ruleset _ruleset;
        private readonly Dictionary<(string, string), bool> _known = new();
        private Dictionary<(string Table, string Child), List<string>>? _parents;

        public Reachability(Ruleset ruleset) => _ruleset = ruleset;

        public bool IsReachable(string table, string chain)
        {
            if (_known.TryGetValue((table, chain), out var known))
            {
                return known;
            }

            _known[(table, chain)] = false; // cycle guard
            bool result;
            var hook = RuleLayout.Hooks.FirstOrDefault(h => h.Table == table && h.Chain == chain);
            if (hook is not null)
            {
                result = ChangePlanner.HasJump(_ruleset.Table(table), hook);
            }
            else
            {
                _parents ??= BuildParents();
                result = _parents.TryGetValue((table, chain), out var parents) && parents.Any(p => IsReachable(table, p));
            }

            _known[(table, chain)] = result;
            return result;
        }

        private Dictionary<(string Table, string Child), List<string>> BuildParents()
        {
            var map = new Dictionary<(string, string), List<string>>();
            foreach (var table in _ruleset.Tables)
            {
                foreach (var r in table.Rules.Where(r => r.Chain.StartsWith(RuleLayout.ChainPrefix, StringComparison.Ordinal)))
                {
                    if (RuleLayout.DispatchTarget(r.Spec) is { } child)
                    {
                        if (!map.TryGetValue((table.Name, child), out var list))
                        {
                            map[(table.Name, child)] = list = new List<string>();
                        }

                        list.Add(r.Chain);
                    }
                }
            }

            return map;
        }
    }

    /// <summary>"8080" or "8000:8010".</summary>
    private static (int, int) ParsePorts(string p)
    {
        var colon = p.IndexOf(':');
        return colon < 0 ? (ParsePort(p), ParsePort(p)) : (ParsePort(p[..colon]), ParsePort(p[(colon + 1)..]));
    }

    /// <summary>"192.0.2.10:80", "[2001:db8::10]:80", "192.0.2.10:9000-9010/8000".</summary>
    private static (IPAddress, int, int) ParseTarget(string s)
    {
        var (address, ports) = SplitEndpoint(s);
        var slash = ports.IndexOf('/');
        if (slash >= 0)
        {
            ports = ports[..slash];
        }

        var dash = ports.IndexOf('-');
        return dash < 0
            ? (address, ParsePort(ports), ParsePort(ports))
            : (address, ParsePort(ports[..dash]), ParsePort(ports[(dash + 1)..]));
    }

    private static (IPAddress, string) SplitEndpoint(string s)
    {
        if (s.StartsWith('['))
        {
            var close = s.IndexOf(']');
            if (close < 0 || close + 1 >= s.Length || s[close + 1] != ':')
            {
                throw new FormatException("bad DNAT target " + s);
            }

            return (IPAddress.Parse(s[1..close]), s[(close + 2)..]);
        }

        var colon = s.IndexOf(':');
        if (colon <= 0)
        {
            throw new FormatException("DNAT target without port " + s);
        }

        return (IPAddress.Parse(s[..colon]), s[(colon + 1)..]);
    }

    private static SnatMode SnatModeOf(OwnedRule snat) =>
        snat.Options.TryGetValue("-j", out var target) && target == "MASQUERADE" ? SnatMode.Masquerade : SnatMode.Snat;

    private static Protocol ParseProtocol(string p) => p switch
    {
        "tcp" or "6" => Protocol.Tcp,
        "udp" or "17" => Protocol.Udp,
        _ => throw new FormatException("unknown protocol " + p),
    };

    private static int ParsePort(string p) =>
        int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : throw new FormatException("bad port " + p);

    /// <summary>"1.2.3.4/32", "1.2.3.4", "2001:db8::1/128".</summary>
    private static IPAddress ParseHost(string s)
    {
        var slash = s.IndexOf('/');
        if (slash >= 0)
        {
            var prefix = s[(slash + 1)..];
            if (prefix != "32" && prefix != "128")
            {
                throw new FormatException("not a host address " + s);
            }

            s = s[..slash];
        }

        return IPAddress.Parse(s);
    }
}
