namespace PSNetfilter;

/// <summary>Address family; decides between iptables and ip6tables.</summary>
public enum IpFamily
{
    IPv4,
    IPv6,
}
