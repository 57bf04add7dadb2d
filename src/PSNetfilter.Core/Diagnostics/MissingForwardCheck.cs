using System.Globalization;
using System.Text;

namespace PSNetfilter.Core.Diagnostics;

/// <summary>
/// Forwards PSNetfilter created (its record of intent) or persisted (an installed boot set) of which the kernel
/// holds no rule any more: a <c>flush ruleset</c> (Debian's /etc/nftables.conf does one on every reload), a
/// firewall manager that rebuilds the iptables tables (firewalld with FirewallBackend=iptables), or a hand edit.
/// </summary>
public static class MissingForwardCheck
{
    public const string CheckName = "Missing";

    public static PortForwardFinding Recorded(PortForward f, string recordPath) =>
        new(f.Name, FindingSeverity.Error, CheckName,
            $"Forward '{f.Name}' was created by PSNetfilter (recorded in {recordPath}) but none of its rules are in the kernel.",
            Why,
            Repair(f) + (f.Persisted ? " Or restart its boot unit (systemctl restart <unit>), which restores every forward it holds." : string.Empty));

    public static PortForwardFinding Persisted(string name, string unit, string? networkNamespace) =>
        new(name, FindingSeverity.Error, CheckName,
            $"Forward '{name}' is persisted in {unit} but none of its rules are in the kernel.",
            Why,
            $"systemctl restart {unit} restores it (and every other forward of that unit).")
        {
            NetworkNamespace = networkNamespace,
        };

    private const string Why = "Someone else deleted its rules: a flush of the whole ruleset (nft flush ruleset, as Debian's /etc/nftables.conf does whenever nftables.service starts or reloads), a firewall manager that rebuilds the iptables tables (firewalld with FirewallBackend=iptables, at a reload or restart), or a hand edit. The forward carries nothing until it is made again.";

    /// <summary>The New-PortForward command that makes the forward again, with its whole definition.</summary>
    public static string Repair(PortForward f)
    {
        var sb = new StringBuilder("New-PortForward -Name ").Append(Quote(f.Name));
        sb.Append(" -Protocol ").Append(f.Protocol);
        if (f.ExternalAddress is { } ext)
        {
            sb.Append(" -ExternalAddress ").Append(ext);
        }

        sb.Append(" -ExternalPort ").Append(Ports(f.ExternalPort, f.ExternalPortEnd));
        sb.Append(" -InternalAddress ").Append(f.InternalAddress);
        sb.Append(" -InternalPort ").Append(Ports(f.InternalPort, f.InternalPortEnd));
        switch (f.SnatMode)
        {
            case SnatMode.Masquerade:
                sb.Append(" -Masquerade");
                break;
            case SnatMode.None:
                sb.Append(" -NoSnat");
                break;
            default:
                if (f.SnatAddress is { } snat)
                {
                    sb.Append(" -SnatAddress ").Append(snat);
                }

                break;
        }

        if (f.SourceAddress.Count > 0)
        {
            sb.Append(" -SourceAddress ").Append(string.Join(",", f.SourceAddress));
        }

        if (f.InInterface is { } iif)
        {
            sb.Append(" -InInterface ").Append(Quote(iif));
        }

        if (f.IncludeLocal)
        {
            sb.Append(" -IncludeLocal");
        }

        if (f.Description is { } d)
        {
            sb.Append(" -Description ").Append(Quote(d));
        }

        if (f.NetworkNamespace is { } ns)
        {
            sb.Append(" -NetworkNamespace ").Append(Quote(ns));
        }

        return sb.ToString();
    }

    private static string Ports(int first, int last) =>
        first == last ? first.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{first}-{last}");

    /// <summary>A PowerShell single-quoted string: only ' needs doubling.</summary>
    private static string Quote(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";
}
