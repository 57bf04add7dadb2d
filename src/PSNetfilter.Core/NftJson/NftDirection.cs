namespace PSNetfilter.Core.NftJson;

/// <summary>Which way a packet travels relative to the connection that conntrack saw first.</summary>
public enum NftDirection
{
    Original,
    Reply,
}
