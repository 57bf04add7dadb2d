using System.Security.Cryptography;
using PSNetfilter.Core.Host;
using Xunit;

namespace PSNetfilter.Tests.Support;

/// <summary>A [Fact] that runs only as root (it needs ip netns); skipped otherwise.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!SystemChecks.IsRoot())
        {
            base.Skip = "needs root: creates a network namespace";
        }
    }

    /// <summary>A "BUG: ..." reason wins over the root check.</summary>
    public override string? Skip
    {
        get => base.Skip;
        set => base.Skip = value ?? base.Skip;
    }
}

/// <summary>A throw-away network namespace <c>psnfx-&lt;hex&gt;</c>, deleted on Dispose even when the test failed.</summary>
internal sealed class TestNamespace : IDisposable
{
    public TestNamespace()
    {
        Name = "psnfx-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(5)).ToLowerInvariant();
        Sh.Check("ip", "netns", "add", Name);
    }

    public string Name { get; }

    /// <summary>Runs a tool inside the namespace.</summary>
    public string Exec(string tool, params string[] args) => Sh.Check("ip", new[] { "netns", "exec", Name, tool }.Concat(args).ToArray());

    /// <summary>Runs a tool inside the namespace with stdin.</summary>
    public string ExecIn(string stdin, string tool, params string[] args) => Sh.CheckIn(stdin, "ip", new[] { "netns", "exec", Name, tool }.Concat(args).ToArray());

    /// <summary>iptables-save output without its '#' lines, per table (table order differs between backends).</summary>
    public SortedDictionary<string, string> Save(string tool = "iptables-save")
    {
        var text = string.Join('\n', Exec(tool).Split('\n').Where(l => !l.StartsWith('#')));
        var tables = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var chunk in text.Split('*', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = chunk[..chunk.IndexOf('\n')];
            tables[name] = "*" + chunk.TrimEnd('\n') + "\n";
        }

        return tables;
    }

    public static string Flatten(SortedDictionary<string, string> tables) => string.Concat(tables.Values);

    public void Dispose()
    {
        for (var attempt = 0; attempt < 5 && File.Exists(Path.Combine(SystemChecks.NetnsDirectory, Name)); attempt++)
        {
            if (Sh.Run("ip", "netns", "delete", Name).ExitCode != 0)
            {
                Thread.Sleep(100);
            }
        }

        try
        {
            File.Delete(Path.Combine(NamespaceLock.DefaultDirectory, "netns-" + Name + ".lock"));
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>Runs processes (never a shell) for the namespace tests.</summary>
internal static class Sh
{
    public static ProcessResult Run(string program, params string[] args) => RunIn(null, program, args);

    public static ProcessResult RunIn(string? stdin, string program, params string[] args)
    {
        var path = ExecutableLocator.Find(program) ?? program;
        return CliWrapProcessRunner.Instance.RunAsync(new ProcessRequest(path, args, stdin), CancellationToken.None).GetAwaiter().GetResult();
    }

    public static string Check(string program, params string[] args) => CheckIn(null, program, args);

    public static string CheckIn(string? stdin, string program, params string[] args)
    {
        var r = RunIn(stdin, program, args);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({r.ExitCode}): {r.StandardError}");
        }

        return r.StandardOutput;
    }
}

/// <summary>A temporary folder (for namespace locks), deleted on Dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "psnfx-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}
