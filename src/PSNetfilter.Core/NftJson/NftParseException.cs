namespace PSNetfilter.Core.NftJson;

/// <summary><c>nft -j</c> output the parser could not read.</summary>
public sealed class NftParseException : NetfilterException
{
    public NftParseException(string message, Exception? inner)
        : base("NftRulesetParseError", FailureKind.InvalidData, message, null, inner)
    {
    }
}
