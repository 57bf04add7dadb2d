namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>One line of a forward in the table: an element of a set or map, or a rule of a chain.</summary>
/// <param name="IsRule">A rule (else an element).</param>
/// <param name="Container">The set, map or chain.</param>
/// <param name="Role">dnat, local, snat, masq, hairpin, fwd, or dI/N for a note.</param>
/// <param name="Line">The <c>add element</c> or <c>add rule</c> line.</param>
/// <param name="Key">An element's key as nft reads it (for <c>delete element</c>); empty for a rule.</param>
/// <param name="Element">An element as written between the braces of its <c>add element</c> line (key, comment, data); null for a rule.</param>
public sealed record NftPart(bool IsRule, string Container, string Role, string Line, string Key, string? Element = null);
