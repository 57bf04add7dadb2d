using System.Security.Cryptography;
using System.Text;
using PSNetfilter.Core.Host;
using PSNetfilter.Tests.Support;

namespace PSNetfilter.Tests.Backends.Nftables;

/// <summary>
/// A throw-away network namespace <c>psnfT-&lt;hex&gt;</c> for the nftables backend's kernel tests, deleted on Dispose
/// even when the test failed. Runs nft inside it through the tests' process helper (never a shell).
/// </summary>
internal sealed class NftTestNamespace : IDisposable
{
    public NftTestNamespace()
    {
        Name = "psnfT-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        Sh.Check("ip", "netns", "add", Name);
    }

    public string Name { get; }

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
