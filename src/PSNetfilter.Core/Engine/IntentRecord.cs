using System.Text.Json;
using PSNetfilter.Core.Persistence;

namespace PSNetfilter.Core.Engine;

/// <summary>
/// What PSNetfilter created in one network namespace, kept beside the kernel's rules so that a forward wiped by
/// someone else (<c>nft flush ruleset</c> at a reload of nftables.service, firewalld's reload with its iptables
/// backend, a hand edit) is reported as missing instead of silently forgotten. One JSON file per namespace under
/// /run/psnetfilter/intent: /run is a tmpfs, so a reboot forgets unpersisted forwards exactly as the kernel does.
/// Written only by a change that applied something, under the namespace lock (so concurrent writers are
/// serialised as the rules are) and atomically (a reader sees the old file or the new one). It stores the
/// namespace's identity (the inode of its nsfs file), so a record of a deleted namespace is never applied to a new
/// namespace of the same name. The record never makes a forward appear: it is only compared with the kernel.
/// </summary>
public static class IntentRecord
{
    public const int FormatVersion = 1;

    public static string PathFor(string directory, string? networkNamespace) =>
        Path.Combine(directory, "intent", (networkNamespace is null ? "host" : "netns-" + networkNamespace) + ".json");

    /// <summary>The recorded forwards, or none when there is no record or it belongs to another incarnation of the namespace.</summary>
    public static IReadOnlyList<PortForwardDefinition> Read(string path, string namespaceId)
    {
        Document? doc;
        try
        {
            doc = JsonSerializer.Deserialize(File.ReadAllBytes(path), IntentJson.Default.Document);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Array.Empty<PortForwardDefinition>();
        }
        catch (JsonException)
        {
            // A record this version cannot read says nothing; the next change writes a good one.
            return Array.Empty<PortForwardDefinition>();
        }

        if (doc is null || doc.Version != FormatVersion || doc.Namespace != namespaceId)
        {
            return Array.Empty<PortForwardDefinition>();
        }

        var list = new List<PortForwardDefinition>();
        foreach (var f in doc.Forwards)
        {
            try
            {
                list.Add(f.ToDefinition());
            }
            catch (NetfilterException)
            {
                // an entry that no longer validates is left out rather than reported as a forward
            }
        }

        return list;
    }

    /// <summary>Applies a change's results to the record: created, replaced and unchanged forwards are kept, removed ones dropped.</summary>
    public static void Update(string path, string namespaceId, IEnumerable<ChangeResult> results)
    {
        var byName = Read(path, namespaceId).ToDictionary(d => d.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var r in results)
        {
            if (r.Kind == ChangeKind.Removed)
            {
                byName.Remove(r.Forward.Name);
            }
            else
            {
                byName[r.Forward.Name] = r.Forward.Definition;
            }
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var doc = new Document
        {
            Version = FormatVersion,
            Namespace = namespaceId,
            Forwards = byName.Values.OrderBy(d => d.Name, StringComparer.Ordinal).Select(Entry.From).ToList(),
        };
        AtomicFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(doc, IntentJson.Default.Document), AtomicFile.Mode0644);
    }

    /// <summary>
    /// One definition as one line of base64 of its JSON, as a boot set's header keeps it: no free text of a
    /// description reaches the script, not even in a comment.
    /// </summary>
    public static string ToHeaderLine(PortForwardDefinition definition) =>
        Convert.ToBase64String(JsonSerializer.SerializeToUtf8Bytes(Entry.From(definition), DefinitionLineJson.Default.Entry));

    /// <summary>The definition of <see cref="ToHeaderLine"/>, validated again; null when the text is not one.</summary>
    public static PortForwardDefinition? FromHeaderLine(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(Convert.FromBase64String(json), DefinitionLineJson.Default.Entry)?.ToDefinition();
        }
        catch (Exception ex) when (ex is JsonException or NetfilterException or FormatException)
        {
            return null;
        }
    }

    internal sealed class Document
    {
        public int Version { get; set; }

        /// <summary>The namespace's identity: "net:[inode]" as /proc/thread-self/ns/net names it.</summary>
        public string Namespace { get; set; } = string.Empty;

        public List<Entry> Forwards { get; set; } = new();
    }

    internal sealed class Entry
    {
        public string Name { get; set; } = string.Empty;

        public Protocol Protocol { get; set; }

        public string? ExternalAddress { get; set; }

        public int ExternalPort { get; set; }

        public int ExternalPortEnd { get; set; }

        public string InternalAddress { get; set; } = string.Empty;

        public int InternalPort { get; set; }

        public int InternalPortEnd { get; set; }

        public SnatMode SnatMode { get; set; }

        public string? SnatAddress { get; set; }

        public string? Description { get; set; }

        public List<string> SourceAddresses { get; set; } = new();

        public string? InInterface { get; set; }

        public bool IncludeLocal { get; set; }

        public string? HairpinNetwork { get; set; }

        public static Entry From(PortForwardDefinition d) => new()
        {
            Name = d.Name,
            Protocol = d.Protocol,
            ExternalAddress = d.ExternalAddress?.ToString(),
            ExternalPort = d.ExternalPort,
            ExternalPortEnd = d.ExternalPortEnd,
            InternalAddress = d.InternalAddress.ToString(),
            InternalPort = d.InternalPort,
            InternalPortEnd = d.InternalPortEnd,
            SnatMode = d.SnatMode,
            SnatAddress = d.SnatAddress?.ToString(),
            Description = d.Description,
            SourceAddresses = d.SourceAddresses.Select(n => n.ToString()).ToList(),
            InInterface = d.InInterface,
            IncludeLocal = d.IncludeLocal,
            HairpinNetwork = d.HairpinNetwork?.ToString(),
        };

        /// <summary>Back through the same validation as any other definition.</summary>
        public PortForwardDefinition ToDefinition() => PortForwardDefinition.CreateFromKernel(
            Name,
            Protocol,
            ExternalAddress is null ? null : PortForwardDefinition.ParseAddress(ExternalAddress, nameof(ExternalAddress)),
            ExternalPort,
            PortForwardDefinition.ParseAddress(InternalAddress, nameof(InternalAddress)),
            InternalPort,
            SnatMode,
            SnatAddress is null ? null : PortForwardDefinition.ParseAddress(SnatAddress, nameof(SnatAddress)),
            Description,
            new ForwardExtras(
                ExternalPortEnd,
                InternalPortEnd,
                SourceAddresses.Select(PortForwardDefinition.ParseNetwork).ToList(),
                InInterface,
                IncludeLocal,
                HairpinNetwork is null ? null : PortForwardDefinition.ParseNetwork(HairpinNetwork)));
    }
}
