namespace PSNetfilter;

/// <summary>A read-only list of addresses whose text is "a,b,c", so Export-Csv writes it and New-PortForward reads it back.</summary>
public sealed class AddressList : System.Collections.ObjectModel.ReadOnlyCollection<string>
{
    public AddressList(IList<string> items)
        : base(items)
    {
    }

    public override string ToString() => string.Join(",", this);
}
