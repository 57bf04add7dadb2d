namespace PSNetfilter;

/// <summary>Transport protocol of a forward.</summary>
public enum Protocol
{
    Tcp,
    Udp,
}
