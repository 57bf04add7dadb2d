using PSNetfilter.Core.Host;
using PSNetfilter.Core.Backends;

namespace PSNetfilter.Core.Persistence;

/// <summary>
/// The forwards a persistence unit restores at boot: validated, deduplicated and sorted by name, so the
/// same set always renders to the same bytes, whatever order it was given in.
/// </summary>
public sealed class BootSet
{
    /// <summary>Version of the boot-set script format (the <c># psnf-boot-set:</c> header line).</summary>
    public const int FormatVersion = 1;

    /// <exception cref="NetfilterException">
    /// NoForwardsGiven, InvalidUnitName, InvalidNetworkNamespace, DuplicateForwardName,
    /// IncompleteForwardDefinition.
    /// </exception>
    public BootSet(string unitName, string? networkNamespace, IEnumerable<PortForwardDefinition> forwards)
        : this(unitName, networkNamespace, (forwards ?? throw new ArgumentNullException(nameof(forwards))).Select(d => (d, BackendCatalog.Default)))
    {
    }

    /// <summary>A set whose forwards are each restored into the backend named beside it (<see cref="BackendCatalog"/>).</summary>
    /// <exception cref="NetfilterException">As the other constructor, and UnknownBackend.</exception>
    public BootSet(string unitName, string? networkNamespace, IEnumerable<(PortForwardDefinition Definition, string Backend)> forwards)
    {
        ArgumentNullException.ThrowIfNull(forwards);
        if (!ServiceNames.IsValid(unitName))
        {
            throw new NetfilterException("InvalidUnitName", FailureKind.InvalidArgument, $"'{PortForwardDefinition.Printable(unitName)}' is not a valid unit name.", unitName);
        }

        networkNamespace = NetworkNamespaceName.Check(networkNamespace);

        var byName = new SortedDictionary<string, PortForwardDefinition>(PortForwardNames.Comparer);
        var backends = new Dictionary<string, string>(PortForwardNames.Comparer);
        foreach (var (d, backend) in forwards)
        {
            ArgumentNullException.ThrowIfNull(d);
            BackendCatalog.Check(backend);
            if (byName.TryGetValue(d.Name, out var earlier))
            {
                if (!earlier.Equals(d))
                {
                    throw new NetfilterException(
                        "DuplicateForwardName",
                        FailureKind.InvalidArgument,
                        $"Two different forwards named '{d.Name}' were given ({string.Join("; ", d.Differences(earlier))}). A boot set holds one forward per name.",
                        d.Name);
                }

                continue;
            }

            Recheck(d);
            byName[d.Name] = d;
            backends[d.Name] = backend;
        }

        if (byName.Count == 0)
        {
            throw NoForwards();
        }

        var list = byName.Values.ToList();
        UnitName = unitName;
        NetworkNamespace = networkNamespace;
        Forwards = list;
        _backends = backends;
    }

    private readonly Dictionary<string, string> _backends;

    public string UnitName { get; }

    /// <summary>The unit name without <c>.service</c>: the folder under /etc/psnetfilter.</summary>
    public string BaseName => ServiceNames.BaseName(UnitName);

    /// <summary>The named namespace the unit restores into (<c>ip netns exec</c>); null for the namespace systemd runs in.</summary>
    public string? NetworkNamespace { get; }

    /// <summary>The forwards, sorted by name (ordinal).</summary>
    public IReadOnlyList<PortForwardDefinition> Forwards { get; }

    public IEnumerable<PortForwardDefinition> ForFamily(IpFamily family) => Forwards.Where(f => f.Family == family);

    /// <summary>The backend the forward is restored into.</summary>
    public string BackendOf(PortForwardDefinition forward) => _backends[forward.Name];

    /// <summary>The forwards restored into <paramref name="backend"/>, sorted by name.</summary>
    public IReadOnlyList<PortForwardDefinition> ForBackend(string backend) =>
        Forwards.Where(f => string.Equals(_backends[f.Name], backend, StringComparison.Ordinal)).ToList();

    /// <summary>The module's lock file for the namespace (the script takes the same flock as the cmdlets).</summary>
    public string LockPath => LockPathFor(NetworkNamespace);

    /// <summary>While this file exists, the script's <c>stop</c> keeps the forwards (Uninstall without -RemoveForwards).</summary>
    public string KeepFlagPath => KeepFlagPathFor(UnitName);

    public static string LockPathFor(string? networkNamespace) =>
        NamespaceLock.DefaultDirectory + "/" + (networkNamespace is null ? "host" : "netns-" + networkNamespace) + ".lock";

    public static string KeepFlagPathFor(string unitName) => NamespaceLock.DefaultDirectory + "/" + unitName + ".keep-forwards";

    public static NetfilterException NoForwards() =>
        new(
            "NoForwardsGiven",
            FailureKind.InvalidArgument,
            "No port forwards were given, so there is nothing to persist. Pipe forwards (Get-PortForward web* | Install-PortForwardService) or select them with -ForwardName. To remove the service, use Uninstall-PortForwardService.",
            null);

    /// <summary>
    /// A definition is validated when it is built (every constructor path validates); what remains is a forward
    /// read back with its SNAT rule missing, which has no SNAT address and cannot be restored as it was.
    /// </summary>
    private static void Recheck(PortForwardDefinition d)
    {
        if (d.SnatMode == SnatMode.Snat && d.SnatAddress is null)
        {
            throw new NetfilterException(
                "IncompleteForwardDefinition",
                FailureKind.InvalidData,
                $"Port forward '{d.Name}' lost its SNAT rule, so its SNAT address is unknown and it cannot be saved as it was. Restore it first (New-PortForward ... -Force), then install again.",
                d.Name);
        }
    }
}
