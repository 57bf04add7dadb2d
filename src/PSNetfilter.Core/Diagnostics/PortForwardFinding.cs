namespace PSNetfilter.Core.Diagnostics;

/// <summary>One problem Test-PortForward found: what, why, and the fix.</summary>
public sealed record PortForwardFinding(string? Forward, FindingSeverity Severity, string Check, string What, string Why, string Fix)
{
    public string? NetworkNamespace { get; init; }

    /// <summary>For findings about another table: the table ("inet filter", "ip libvirt_network").</summary>
    public string? Table { get; init; }

    /// <summary>For findings about a chain: its name.</summary>
    public string? Chain { get; init; }

    /// <summary>The program that owns the table or rule, where recognisable (firewalld, libvirt, Docker, ...).</summary>
    public string? Owner { get; init; }
}
