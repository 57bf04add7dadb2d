using PSNetfilter.Core.Backends.Iptables;
using PSNetfilter.Tests.Support;
using Xunit;

namespace PSNetfilter.Tests;

public class TokenizerTests
{
    [Fact]
    public void Plain_words_split_on_spaces_and_tabs()
    {
        Assert.Equal(new[] { "-p", "tcp", "-m", "tcp", "--dport", "80" }, RuleTokenizer.Split("-p tcp  -m\ttcp --dport 80 "));
        Assert.Empty(RuleTokenizer.Split(string.Empty));
        Assert.Empty(RuleTokenizer.Split("   "));
    }

    [Fact]
    public void Quoted_comment_with_spaces_is_one_token()
    {
        var tokens = RuleTokenizer.Split("-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS");
        Assert.Equal(
            new[] { "-m", "comment", "--comment", "kubernetes service nodeports; NOTE: this must be the last rule in this chain", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "KUBE-NODEPORTS" },
            tokens);
    }

    [Fact]
    public void Escaped_quote_and_backslash_inside_quotes()
    {
        // --comment "a \"quoted\" back\\slash" -> a "quoted" back\slash
        var tokens = RuleTokenizer.Split("--comment \"a \\\"quoted\\\" back\\\\slash\" -j RETURN");
        Assert.Equal(new[] { "--comment", "a \"quoted\" back\\slash", "-j", "RETURN" }, tokens);
    }

    [Fact]
    public void Trailing_space_inside_quotes_is_kept_and_empty_quotes_make_an_empty_token()
    {
        Assert.Equal(new[] { "-j", "LOG", "--log-prefix", "[UFW BLOCK] " }, RuleTokenizer.Split("-j LOG --log-prefix \"[UFW BLOCK] \""));
        Assert.Equal(new[] { "--comment", string.Empty, "-j", "ACCEPT" }, RuleTokenizer.Split("--comment \"\" -j ACCEPT"));
    }

    [Fact]
    public void Quotes_in_the_middle_of_a_word_join_it()
    {
        Assert.Equal(new[] { "abc de", "f" }, RuleTokenizer.Split("ab\"c d\"e f"));
    }

    [Fact]
    public void Owned_golden_rule_tokenises_to_the_unquoted_tag()
    {
        var spec = Golden.Parse("nft", "owned.v4.save").GetTable("nat")!.Rules.First(r => r.Chain == "PSNF-PREROUTING").Spec;
        var tokens = RuleTokenizer.Split(spec);
        Assert.Equal("psnf:v1:web:dnat:snat:", tokens[tokens.IndexOf("--comment") + 1]);
        Assert.Equal("198.51.100.10:8080", tokens[^1]);
    }

    [Fact]
    public void Escaped_single_quote_inside_quotes_is_unescaped_like_iptables_restore()
    {
        // iptables-save prints the comment  it's  as  "it\'s"  (see Golden/README.md); restore reads it back as  it's.
        var tokens = RuleTokenizer.Split("-m comment --comment \"it\\'s a \\\"quoted\\\" comment with a back\\\\slash\" -j RETURN");
        Assert.Equal("it's a \"quoted\" comment with a back\\slash", tokens[3]);
    }
}
