using System.Text;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// One <c>nft -f</c> input per change: every line names <c>table inet psnetfilter</c> and nothing else, and no line
/// flushes the ruleset. A change script starts with the skeleton (<c>add table/chain/map/set</c>: creates what is
/// missing, leaves what is there), adds the dispatch rules the current table lacks, deletes the parts of the removed
/// forwards that are present (elements by key, rules by handle), then adds the new forwards' parts. The boot file
/// (<see cref="BootFile"/>) is the whole table for a set of forwards in <c>add</c> lines only; the boot script loads it
/// whole onto a namespace without the table and otherwise only the lines of forwards not live as saved
/// (<see cref="NftBootScript"/>).
/// </summary>
public static class NftChangeScript
{
    /// <summary>The script that removes <paramref name="remove"/> (as read back) and adds <paramref name="add"/>.</summary>
    public static string Render(NftTableState current, IEnumerable<PortForwardDefinition> add, IEnumerable<NftTableForward> remove) =>
        RenderOwned(current, add, remove).Script;

    /// <summary>
    /// As <see cref="Render"/>, with the name of the forward each line was written for (null for the skeleton and the
    /// dispatch rules), by 0-based line: so that a line nft refuses is mapped back to its forward.
    /// </summary>
    /// <param name="batchElements">
    /// The added elements as one <c>add element</c> line per set or map (owner null) after the added rules, instead of
    /// one line per element: nft parses and evaluates a command per line, so this takes about half the time for many
    /// forwards. The same elements in the same transaction; a refused batch cannot name its forward, so the caller
    /// renders again without batching to find it.
    /// </param>
    public static (string Script, IReadOnlyList<string?> Owners) RenderOwned(NftTableState current, IEnumerable<PortForwardDefinition> add, IEnumerable<NftTableForward> remove, bool batchElements = false)
    {
        var owners = new List<string?>();
        var sb = new StringBuilder(4096);
        foreach (var line in NftTableLayout.Skeleton())
        {
            sb.Append(line).Append('\n');
            owners.Add(null);
        }

        foreach (var rule in NftTableLayout.DispatchRules().Where(r => !current.DispatchTags.Contains(r.Tag)))
        {
            sb.Append(NftTableLayout.DispatchLine(rule)).Append('\n');
            owners.Add(null);
        }

        foreach (var forward in remove)
        {
            foreach (var part in forward.Parts)
            {
                sb.Append(part.DeleteLine).Append('\n');
                owners.Add(forward.Name);
            }
        }

        var batches = batchElements ? new Dictionary<string, List<string>>(StringComparer.Ordinal) : null;
        foreach (var d in add)
        {
            foreach (var part in NftForwardRenderer.Render(d))
            {
                if (batches is not null && part.Element is { } element)
                {
                    if (!batches.TryGetValue(part.Container, out var list))
                    {
                        batches[part.Container] = list = new List<string>();
                    }

                    list.Add(element);
                    continue;
                }

                sb.Append(part.Line).Append('\n');
                owners.Add(d.Name);
            }
        }

        foreach (var (container, elements) in batches ?? new Dictionary<string, List<string>>())
        {
            sb.Append("add element ").Append(NftTableLayout.Table).Append(' ').Append(container).Append(" { ");
            for (var i = 0; i < elements.Count; i++)
            {
                sb.Append(i == 0 ? string.Empty : ", ").Append(elements[i]);
            }

            sb.Append(" }\n");
            owners.Add(null);
        }

        return (sb.ToString(), owners);
    }

    /// <summary>The whole table for <paramref name="forwards"/>, in add lines only: what the boot unit loads.</summary>
    public static string BootFile(IEnumerable<PortForwardDefinition> forwards)
    {
        var sb = new StringBuilder(4096);
        foreach (var line in NftTableLayout.Skeleton())
        {
            sb.Append(line).Append('\n');
        }

        foreach (var rule in NftTableLayout.DispatchRules())
        {
            sb.Append(NftTableLayout.DispatchLine(rule)).Append('\n');
        }

        AppendForwards(sb, forwards);
        return sb.ToString();
    }

    private static void AppendForwards(StringBuilder sb, IEnumerable<PortForwardDefinition> forwards)
    {
        foreach (var d in forwards)
        {
            foreach (var part in NftForwardRenderer.Render(d))
            {
                sb.Append(part.Line).Append('\n');
            }
        }
    }
}
