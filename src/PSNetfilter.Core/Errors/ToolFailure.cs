namespace PSNetfilter;

/// <summary>
/// The error id of a failed process, by tool, in one place: what a script or playbook can tell apart without
/// parsing the message. Every process runs through the host's funnel, which raises
/// <see cref="CommandFailedException"/> with the id chosen here.
/// </summary>
public static class ToolFailure
{
    /// <summary>iptables, ip6tables and their -save and -restore (nft or legacy).</summary>
    public const string Iptables = "IptablesCommandFailed";

    public const string Nft = "NftCommandFailed";

    public const string Ip = "IpCommandFailed";

    public const string Conntrack = "ConntrackCommandFailed";

    public const string Sysctl = "SysctlCommandFailed";

    public const string Systemctl = "SystemctlFailed";

    /// <summary>A boot-set script run as its unit would run it.</summary>
    public const string Script = "ServiceScriptFailed";

    /// <summary>Any other program.</summary>
    public const string Other = "CommandFailed";

    /// <summary>The error id for a failure of <paramref name="program"/> (a path or a name).</summary>
    public static string ErrorIdFor(string program)
    {
        var name = Path.GetFileName(program);
        return name switch
        {
            _ when name.StartsWith("iptables", StringComparison.Ordinal) || name.StartsWith("ip6tables", StringComparison.Ordinal) => Iptables,
            "nft" => Nft,
            "ip" => Ip,
            "conntrack" => Conntrack,
            "sysctl" => Sysctl,
            "systemctl" => Systemctl,
            "sh" or "dash" or "bash" => Script,
            _ => Other,
        };
    }

    /// <summary>The program a displayed command line runs, looking through <c>nsenter ... --</c>.</summary>
    public static string ProgramOf(string command)
    {
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
        {
            return string.Empty;
        }

        var dashes = Array.IndexOf(words, "--");
        return Path.GetFileName(words[0]) == "nsenter" && dashes >= 0 && dashes + 1 < words.Length ? words[dashes + 1] : words[0];
    }
}
