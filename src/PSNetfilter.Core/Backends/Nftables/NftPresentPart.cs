namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>An element or rule of a forward as it is in the kernel: enough to delete it in a later transaction.</summary>
/// <param name="Handle">A rule's handle; 0 for an element.</param>
public sealed record NftPresentPart(bool IsRule, string Container, string Role, string Key, long Handle)
{
    /// <summary>The <c>delete element</c> or <c>delete rule ... handle N</c> line.</summary>
    public string DeleteLine =>
        IsRule
            ? $"delete rule {NftTableLayout.Table} {Container} handle {Handle.ToString(System.Globalization.CultureInfo.InvariantCulture)}"
            : $"delete element {NftTableLayout.Table} {Container} {{ {Key} }}";
}
