using PSNetfilter.Core.Host;
using Xunit;

namespace PSNetfilter.Tests.Host;

/// <summary>Loading libnftables, and reading nft's error locations: no kernel needed.</summary>
public class LibnftablesTests
{
    [Fact]
    public void A_library_that_does_not_load_is_reported_as_not_available()
    {
        var reason = Libnftables.Probe("libpsnfl-missing.so.9");

        Assert.NotNull(reason);
        Assert.Contains("libpsnfl-missing.so.9", reason, StringComparison.Ordinal);
        Assert.Contains("libnftables1", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_library_without_the_functions_is_reported_as_not_available()
    {
        var reason = Libnftables.Probe("libc.so.6");

        Assert.NotNull(reason);
        Assert.Contains("nft_ctx_new", reason, StringComparison.Ordinal);
        Assert.Contains("nft_run_cmd_from_buffer", reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/dev/stdin:4:19-23: Error: No symbol type information\nadd rule inet t c bogus thing\n                  ^^^^^\n", 4)]
    [InlineData("<cmdline>:12:5: Error: Could not process rule: File exists\n", 12)]
    [InlineData("/dev/stdin:2:16-19: Error: syntax error\nx\n/dev/stdin:3:16-19: Error: syntax error\n", 2)]
    public void The_refused_line_is_the_first_location_nft_names(string error, int line)
    {
        var result = new NftRunResult(false, string.Empty, error) { Command = "nft -f -", ExitCode = 1 };

        var ex = Assert.Throws<CommandFailedException>(() => result.EnsureSuccess(string.Join('\n', Enumerable.Range(1, 20).Select(i => "cmd " + i))));

        Assert.Equal(line, ex.FailedLine);
        Assert.Equal("cmd " + line, ex.FailedInput);
        Assert.Equal(error, ex.StandardError);
        Assert.StartsWith($"line {line}:", result.ErrorWithoutSource, StringComparison.Ordinal);
    }

    [Fact]
    public void An_error_without_a_location_names_no_line()
    {
        var result = new NftRunResult(false, string.Empty, "Error: Could not process rule: Operation not permitted\n") { ExitCode = 1 };

        var ex = Assert.Throws<CommandFailedException>(() => result.EnsureSuccess("add table inet t\n"));

        Assert.Null(ex.FailedLine);
        Assert.Null(ex.FailedInput);
    }

    [Fact]
    public void Success_returns_the_result()
    {
        var result = new NftRunResult(true, "{}", string.Empty);

        Assert.Same(result, result.EnsureSuccess("list ruleset"));
    }
}
