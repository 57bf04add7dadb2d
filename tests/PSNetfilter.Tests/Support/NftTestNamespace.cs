using System.Security.Cryptography;
using System.Text;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Tests.Support;

/// <summary>
/// A throw-away network namespace <c>psnfT-&lt;hex&gt;</c> for the tests of nft and of the nftables backend, deleted
/// on Dispose even when the test failed. Runs nft inside it through the tests' process helper (never a shell).
/// </summary>
internal sealed class NftTestNamespace : IDisposable
{
    public NftTestNamespace()
    {
        Name = "psnfT-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        Sh.Check("ip", "netns", "add", Name);
    }

    public string Name { get; }

    public static string RandomHex() => Convert.ToHexString(RandomNumberGenerator.GetBytes(5)).ToLowerInvariant();

    /// <summary>nft's text listing of the namespace's whole ruleset, as <c>ip netns exec NS nft list ruleset</c> prints it.</summary>
    public string Ruleset() => Sh.Check("ip", "netns", "exec", Name, "nft", "list", "ruleset");

    /// <summary>A runner for <paramref name="path"/>: "in-process" (libnftables) or "process" (nft through the host's funnel).</summary>
    public NftRunner Runner(string path) => path switch
    {
        "in-process" => new InProcessNftRunner(Name),
        "process" => new ProcessNftRunner(new NetfilterHost(Name)),
        _ => throw new ArgumentOutOfRangeException(nameof(path), path, "in-process or process"),
    };

    public string Exec(params string[] args) => Sh.Check("ip", new[] { "netns", "exec", Name }.Concat(args).ToArray());

    /// <summary>Loads a script with one <c>nft -f -</c> (one transaction); throws with nft's message when refused.</summary>
    public void Nft(string script) => Sh.CheckIn(script, "ip", "netns", "exec", Name, "nft", "-f", "-");

    /// <summary>Loads a script and returns nft's exit code and error text instead of throwing.</summary>
    public (int ExitCode, string Error) TryNft(string script)
    {
        var r = Sh.RunIn(script, "ip", "netns", "exec", Name, "nft", "-f", "-");
        return (r.ExitCode, r.StandardError);
    }

    public string ListTableJson() => Exec("nft", "-j", "list", "table", "inet", "psnetfilter");

    public string ListTable() => Exec("nft", "list", "table", "inet", "psnetfilter");

    /// <summary><c>nft list ruleset</c> without the block of <c>table inet psnetfilter</c>.</summary>
    public string ForeignRuleset() => WithoutOurTable(Exec("nft", "list", "ruleset"));

    public static string WithoutOurTable(string ruleset)
    {
        var sb = new StringBuilder();
        var skipping = false;
        foreach (var line in ruleset.Split('\n'))
        {
            if (line == "table inet psnetfilter {")
            {
                skipping = true;
                continue;
            }

            if (skipping)
            {
                skipping = line != "}";
                continue;
            }

            sb.Append(line).Append('\n');
        }

        return sb.ToString();
    }

    public void Dispose()
    {
        for (var attempt = 0; attempt < 5 && File.Exists(Path.Combine(SystemChecks.NetnsDirectory, Name)); attempt++)
        {
            if (Sh.Run("ip", "netns", "delete", Name).ExitCode != 0)
            {
                Thread.Sleep(100);
            }
        }
    }
}
