using System.Net;
using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Tests.Support;

/// <summary>
/// Stands in for every process the core runs. It records each request and answers from state the test
/// controls: <c>iptables -V</c>, <c>*-save -c</c> (per family), <c>*-restore</c> (records stdin, answers
/// through <see cref="RestoreAnswer"/>), <c>ip -j -batch</c> route lookups and sysctl.
/// </summary>
internal sealed class FakeProcessRunner : IProcessRunner, IKernelAccess
{
    public const string Save4 = "/fake/sbin/iptables-nft-save";
    public const string Restore4 = "/fake/sbin/iptables-nft-restore";
    public const string Save6 = "/fake/sbin/ip6tables-nft-save";
    public const string Restore6 = "/fake/sbin/ip6tables-nft-restore";

    private readonly object _gate = new();

    public static IptablesToolset Backend { get; } = new(IptablesBackendKind.Nft, "1.8.9", Save4, Restore4, Save6, Restore6);

    /// <summary>What <c>iptables-save -c</c> prints.</summary>
    public string SaveText4 { get; set; } = string.Empty;

    /// <summary>What <c>ip6tables-save -c</c> prints.</summary>
    public string SaveText6 { get; set; } = string.Empty;

    /// <summary>When set, iptables-save prints this model kernel and iptables-restore applies to it.</summary>
    public FakeKernel? Kernel4 { get; set; }

    /// <summary>When set, ip6tables-save prints this model kernel and ip6tables-restore applies to it.</summary>
    public FakeKernel? Kernel6 { get; set; }

    /// <summary>Exit code of the save tools.</summary>
    public int SaveExitCode { get; set; }

    /// <summary>Answers a restore: (family, 0-based index of this restore call, stdin) -> result. Default: success.</summary>
    public Func<IpFamily, int, string, ProcessResult> RestoreAnswer { get; set; } = (_, _, _) => new ProcessResult(0, string.Empty, string.Empty);

    /// <summary>prefsrc per destination; a destination not listed has no route.</summary>
    public Dictionary<string, string> Routes { get; } = new(StringComparer.Ordinal);

    /// <summary>What <c>ip -j addr show</c> answers: by default one interface, eth0, with no address.</summary>
    public ProcessResult AddrAnswer { get; set; } = new(0, "[{\"ifindex\":1,\"ifname\":\"lo\",\"addr_info\":[{\"family\":\"inet\",\"local\":\"127.0.0.1\",\"prefixlen\":8}]},{\"ifindex\":2,\"ifname\":\"eth0\",\"addr_info\":[]}]\n", string.Empty);

    /// <summary>What <c>nft -j list ruleset</c> answers: by default a ruleset with no table.</summary>
    public ProcessResult NftRulesetAnswer { get; set; } = new(0, "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\", \"release_name\": \"Lester Gooch #5\", \"json_schema_version\": 1}}]}\n", string.Empty);

    /// <summary>What <c>conntrack -D</c> answers (it exits 1 when nothing matched).</summary>
    public ProcessResult ConntrackAnswer { get; set; } = new(1, string.Empty, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n");

    /// <summary>The options of every <c>conntrack -D</c>, joined by spaces.</summary>
    public List<string> ConntrackDeletes { get; } = new();

    /// <summary>sysctl values (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding).</summary>
    public Dictionary<string, string> Sysctl { get; } = new(StringComparer.Ordinal)
    {
        ["net.ipv4.ip_forward"] = "1",
        ["net.ipv6.conf.all.forwarding"] = "1",
    };

    /// <summary>When set, the in-process chain listings fail with it (netlink refused).</summary>
    public NetfilterException? ChainListError { get; set; }

    /// <summary>The chains <see cref="ListAllChainsAsync"/> reports besides the model kernels' (other programs' tables).</summary>
    public List<(string Family, string Table, string Chain)> OtherChains { get; } = new();

    public Task<string> ReadProcAsync(string? networkNamespace, string path) => Task.FromResult(ReadProcSys(path));

    public Task WriteProcAsync(string? networkNamespace, string path, string text) => WriteProcSysAsync(networkNamespace, path, text);

    public async Task<IReadOnlyList<(string Family, string Table, string Chain)>> ListAllChainsAsync(string? networkNamespace)
    {
        var v4 = await ListChainsAsync(networkNamespace, IpFamily.IPv4).ConfigureAwait(false);
        var v6 = await ListChainsAsync(networkNamespace, IpFamily.IPv6).ConfigureAwait(false);
        return v4.Select(c => ("ip", c.Table, c.Chain)).Concat(v6.Select(c => ("ip6", c.Table, c.Chain))).Concat(OtherChains).ToList();
    }

    /// <summary>/proc/sys reads, answered from <see cref="Sysctl"/> and recorded in <see cref="ProcReads"/>.</summary>
    public string ReadProcSys(string path)
    {
        ProcReads.Add(path);
        var key = path["/proc/sys/".Length..].Replace('/', '.');
        return Sysctl.TryGetValue(key, out var v) ? v + "\n" : throw new IOException($"cannot read {path}");
    }

    /// <summary>
    /// The in-process chain listing (netlink in the module): the chains of the family's model kernel or save
    /// text; recorded in <see cref="ChainListings"/>.
    /// </summary>
    public Task<IReadOnlyList<(string Table, string Chain)>> ListChainsAsync(string? networkNamespace, IpFamily family)
    {
        if (ChainListError is { } error)
        {
            return Task.FromException<IReadOnlyList<(string Table, string Chain)>>(error);
        }

        lock (_gate)
        {
            ChainListings.Add(family);
            var kernel = family == IpFamily.IPv4 ? Kernel4 : Kernel6;
            var text = kernel?.Save() ?? (family == IpFamily.IPv4 ? SaveText4 : SaveText6);
            var ruleset = IptablesSaveParser.Parse(text, family);
            IReadOnlyList<(string, string)> chains = ruleset.Tables.SelectMany(t => t.Chains.Select(c => (t.Name, c.Name))).ToList();
            return Task.FromResult(chains);
        }
    }

    /// <summary>Families whose chains were listed in-process.</summary>
    public List<IpFamily> ChainListings { get; } = new();

    /// <summary>/proc/sys writes, applied to <see cref="Sysctl"/> and recorded in <see cref="SysctlWrites"/> ("key=value").</summary>
    public Task WriteProcSysAsync(string? networkNamespace, string path, string value)
    {
        lock (_gate)
        {
            var key = path["/proc/sys/".Length..].Replace('/', '.');
            if (!Sysctl.ContainsKey(key))
            {
                return Task.FromException(new IOException($"cannot open {path}"));
            }

            Sysctl[key] = value;
            SysctlWrites.Add(key + "=" + value);
            return Task.CompletedTask;
        }
    }

    /// <summary>Every /proc/sys path read in-process.</summary>
    public List<string> ProcReads { get; } = new();

    /// <summary>Every request, as the core made it (with <c>nsenter --net=/run/netns/NS --</c> when a namespace is set).</summary>
    public List<ProcessRequest> Requests { get; } = new();

    /// <summary>Every restore: family and stdin, in order.</summary>
    public List<(IpFamily Family, string Payload)> Restores { get; } = new();

    /// <summary>sysctl writes ("key=value").</summary>
    public List<string> SysctlWrites { get; } = new();

    public Task<ProcessResult> RunAsync(ProcessRequest request, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (request.InputWriter is not null)
            {
                // Started now, answered once its input arrives (it then shows with that input in Requests).
                Requests.Add(request);
                LateStarts++;
                return AnswerLateAsync(Requests.Count - 1, request, cancellationToken);
            }

            Requests.Add(request);
            if (AddrGate is { } gate && Unwrap(request).Arguments.Contains("addr"))
            {
                return gate.ContinueWith(_ => Answer(Unwrap(request)), cancellationToken, TaskContinuationOptions.None, TaskScheduler.Default);
            }

            return Task.FromResult(Answer(Unwrap(request)));
        }
    }

    /// <summary>When set, <c>ip -j addr show</c> answers only once this task completes (a slow read of the gateway's interfaces).</summary>
    public Task? AddrGate { get; set; }

    /// <summary>The stdin of every process started with its input to come, as written so far.</summary>
    public List<LiveInput> LiveInputs { get; } = new();

    /// <summary>A process's stdin that can be read while it is still being written.</summary>
    public sealed class LiveInput : MemoryStream
    {
        private readonly object _sync = new();

        public string Text
        {
            get
            {
                lock (_sync)
                {
                    return System.Text.Encoding.UTF8.GetString(ToArray());
                }
            }
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (_sync)
            {
                base.Write(buffer, offset, count);
            }
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            lock (_sync)
            {
                base.Write(buffer);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer, offset, count);
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Processes started with their input still to come (prepared restores).</summary>
    public int LateStarts { get; private set; }

    private async Task<ProcessResult> AnswerLateAsync(int index, ProcessRequest request, CancellationToken cancellationToken)
    {
        var stdin = new LiveInput();
        lock (_gate)
        {
            LiveInputs.Add(stdin);
        }

        await request.InputWriter!(stdin, cancellationToken).ConfigureAwait(false);
        var input = stdin.Text;
        lock (_gate)
        {
            var resolved = request with { StandardInput = input, InputWriter = null };
            Requests[index] = resolved;
            return Answer(Unwrap(resolved));
        }
    }

    /// <summary>Strips <c>nsenter --net=/run/netns/NS --</c>.</summary>
    public static ProcessRequest Unwrap(ProcessRequest request)
    {
        if (Path.GetFileName(request.Program) == "nsenter" && request.Arguments.Count >= 3 && request.Arguments[0].StartsWith("--net=", StringComparison.Ordinal) && request.Arguments[1] == "--")
        {
            return new ProcessRequest(request.Arguments[2], request.Arguments.Skip(3).ToList(), request.StandardInput) { InputWriter = request.InputWriter };
        }

        return request;
    }

    private ProcessResult Answer(ProcessRequest r)
    {
        var tool = Path.GetFileName(r.Program);
        switch (r.Program)
        {
            case Save4:
                return new ProcessResult(SaveExitCode, Kernel4?.Save() ?? SaveText4, SaveExitCode == 0 ? string.Empty : "iptables-save: cannot read");
            case Save6:
                return new ProcessResult(SaveExitCode, Kernel6?.Save() ?? SaveText6, SaveExitCode == 0 ? string.Empty : "ip6tables-save: cannot read");
            case Restore4:
            case Restore6:
                {
                    var family = r.Program == Restore4 ? IpFamily.IPv4 : IpFamily.IPv6;
                    var index = Restores.Count;
                    Restores.Add((family, r.StandardInput ?? string.Empty));
                    var answer = RestoreAnswer(family, index, r.StandardInput ?? string.Empty);
                    var kernel = family == IpFamily.IPv4 ? Kernel4 : Kernel6;
                    if (answer.ExitCode != 0 || kernel is null)
                    {
                        return answer;
                    }

                    try
                    {
                        kernel.Apply(r.StandardInput ?? string.Empty);
                        return answer;
                    }
                    catch (FakeRestoreException ex)
                    {
                        return new ProcessResult(1, string.Empty, Path.GetFileName(r.Program) + ": line " + ex.Line + " failed\n");
                    }
                }
        }

        if (tool == "iptables" && r.Arguments.SequenceEqual(new[] { "-V" }))
        {
            return new ProcessResult(0, "iptables v1.8.9 (nf_tables)\n", string.Empty);
        }

        if (tool == "ip" && r.Arguments.Contains("-batch"))
        {
            var stdout = new List<string>();
            var stderr = new List<string>();
            var lineNo = 0;
            foreach (var line in (r.StandardInput ?? string.Empty).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                lineNo++;
                var dest = line["route get ".Length..].Trim();
                if (Routes.TryGetValue(dest, out var src))
                {
                    stdout.Add($"[{{\"dst\":\"{dest}\",\"dev\":\"eth0\",\"prefsrc\":\"{src}\",\"flags\":[],\"uid\":0,\"cache\":[]}}]");
                }
                else
                {
                    stderr.Add("RTNETLINK answers: Network is unreachable");
                    stderr.Add($"Command failed -:{lineNo}");
                }
            }

            return new ProcessResult(stderr.Count == 0 ? 0 : 1, string.Join('\n', stdout) + (stdout.Count > 0 ? "\n" : string.Empty), string.Join('\n', stderr));
        }

        if (tool == "ip" && r.Arguments.SkipWhile(a => a != "-j").SequenceEqual(new[] { "-j", "addr", "show" }))
        {
            return AddrAnswer;
        }

        if (tool == "nft" && r.Arguments.SequenceEqual(new[] { "-j", "list", "ruleset" }))
        {
            return NftRulesetAnswer;
        }

        if (tool == "conntrack" && r.Arguments.Count > 0 && r.Arguments[0] == "-D")
        {
            ConntrackDeletes.Add(string.Join(' ', r.Arguments.Skip(1)));
            return ConntrackAnswer;
        }

        if (tool == "sysctl")
        {
            if (r.Arguments.Count == 2 && r.Arguments[0] == "-n")
            {
                return Sysctl.TryGetValue(r.Arguments[1], out var v)
                    ? new ProcessResult(0, v + "\n", string.Empty)
                    : new ProcessResult(255, string.Empty, $"sysctl: cannot stat /proc/sys/{r.Arguments[1]}: No such file or directory");
            }

            if (r.Arguments.Count == 3 && r.Arguments[0] == "-q" && r.Arguments[1] == "-w")
            {
                SysctlWrites.Add(r.Arguments[2]);
                var eq = r.Arguments[2].IndexOf('=');
                Sysctl[r.Arguments[2][..eq]] = r.Arguments[2][(eq + 1)..];
                return new ProcessResult(0, string.Empty, string.Empty);
            }
        }

        return new ProcessResult(127, string.Empty, $"fake runner: unexpected command {r.Display}");
    }

    /// <summary>Requests whose (unwrapped) program is a restore tool.</summary>
    public int RestoreCount => Restores.Count;

    /// <summary>Route lookups sent to ip -batch (their stdin lines).</summary>
    public IEnumerable<string> RouteQueries =>
        Requests.Select(Unwrap).Where(r => Path.GetFileName(r.Program) == "ip" && r.Arguments.Contains("-batch"))
            .SelectMany(r => (r.StandardInput ?? string.Empty).Split('\n', StringSplitOptions.RemoveEmptyEntries));

    public static IPAddress Ip(string s) => IPAddress.Parse(s);
}

/// <summary>Records what the manager tells the cmdlet side; ShouldProcess answers <see cref="Confirm"/>.</summary>
internal sealed class RecordingObserver : PSNetfilter.Core.Engine.IChangeObserver
{
    public bool Confirm { get; set; } = true;

    public List<(string Target, string Action)> ShouldProcessCalls { get; } = new();

    public List<NetfilterException> Failures { get; } = new();

    public List<string> Verboses { get; } = new();

    public List<string> Warnings { get; } = new();

    public bool ShouldProcess(string target, string action)
    {
        lock (ShouldProcessCalls)
        {
            ShouldProcessCalls.Add((target, action));
        }

        return Confirm;
    }

    public void Failed(NetfilterException error)
    {
        lock (Failures)
        {
            Failures.Add(error);
        }
    }

    public void Verbose(string message)
    {
        lock (Verboses)
        {
            Verboses.Add(message);
        }
    }

    public void Warning(string message)
    {
        lock (Warnings)
        {
            Warnings.Add(message);
        }
    }
}
