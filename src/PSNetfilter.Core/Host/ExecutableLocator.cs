namespace PSNetfilter.Core.Host;

/// <summary>Finds tools by name on PATH and in the sbin folders (a non-login root shell may lack them on PATH).</summary>
public static class ExecutableLocator
{
    private static readonly string[] ExtraDirs = { "/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin" };

    public static string? Find(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(ExtraDirs))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>The full path of <paramref name="name"/>, or a NotInstalled error naming the Debian package.</summary>
    public static string Require(string name, string package)
    {
        return Find(name) ?? throw new NetfilterException(
            "ToolNotInstalled",
            FailureKind.NotInstalled,
            $"'{name}' was not found. Install the '{package}' package (as root: apt-get install {package}).",
            name)
        {
            RecommendedAction = $"apt-get install {package}",
        };
    }
}
