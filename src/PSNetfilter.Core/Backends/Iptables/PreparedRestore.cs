using System.Text;
using System.Threading.Channels;
using PSNetfilter.Core.Host;

namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>
/// iptables-restore processes started before their input is complete (see
/// <see cref="NetfilterHost.PrepareRestoreAsync"/>): one for the whole payload, or one per table. Each reads
/// its stdin as it is written. One per table can be fed while the change is still being planned
/// (<see cref="WriteNew"/>): iptables-restore parses those lines at once but sends nothing to the kernel
/// before the table's COMMIT, which only <see cref="Feed"/> writes. A process whose input is closed without
/// COMMIT exits with an error and applies nothing: that is how <see cref="ReleaseAsync"/> abandons one.
/// </summary>
public sealed class PreparedRestore
{
    private readonly IReadOnlyList<Slot> _slots;
    private readonly Action<string> _log;
    private int _taken;

    internal PreparedRestore(IpFamily family, string program, bool perTable, IReadOnlyList<Slot> slots, Action<string> log)
    {
        Family = family;
        Program = program;
        PerTable = perTable;
        _slots = slots;
        _log = log;
    }

    public IpFamily Family { get; }

    /// <summary>The iptables-restore (or ip6tables-restore) they run.</summary>
    public string Program { get; }

    /// <summary>One process per table (nat, filter) rather than one for the whole payload.</summary>
    public bool PerTable { get; }

    /// <summary>
    /// Writes the lines of <paramref name="payload"/> added since the last call to the process of their
    /// table, each table's first line after its <c>*table</c> header. No COMMIT: nothing is applied yet.
    /// </summary>
    public void WriteNew(RestorePayload payload)
    {
        if (!PerTable)
        {
            throw new InvalidOperationException("Only a restore with one process per table takes its payload in parts.");
        }

        if (Volatile.Read(ref _taken) != 0)
        {
            throw new InvalidOperationException("The restore has already been given its whole payload.");
        }

        foreach (var slot in _slots)
        {
            var chunk = slot.Pending;
            for (; slot.Scanned < payload.LineCount; slot.Scanned++)
            {
                var (table, line) = payload.LineAt(slot.Scanned);
                if (table != slot.Table)
                {
                    continue;
                }

                if (!slot.Started)
                {
                    chunk.Append('*').Append(table).Append('\n');
                    slot.Started = true;
                }

                chunk.Append(line).Append('\n');
            }

            // Handed on in blocks, not line by line: one write (and one wake-up of the writer) per block.
            if (chunk.Length >= BlockSize)
            {
                slot.Input.Write(chunk.ToString());
                chunk.Clear();
            }
        }
    }

    /// <summary>Characters of payload gathered before they are written to a process.</summary>
    private const int BlockSize = 32 * 1024;

    /// <summary>
    /// Gives every process the rest of its part of <paramref name="payload"/> (the whole of it, or its table's
    /// lines) and its COMMIT, and no input to a process whose table the payload does not touch. Returns each
    /// process with the part it got (null: none), to map a failed line back to its forward.
    /// </summary>
    internal IReadOnlyList<(RestorePayload? Part, ProcessRequest Request, Task<ProcessResult> Run)> Feed(RestorePayload payload, Action<RestorePayload, string> logPart)
    {
        if (PerTable)
        {
            WriteNew(payload);
        }

        if (Interlocked.Exchange(ref _taken, 1) != 0)
        {
            throw new InvalidOperationException("A prepared iptables-restore takes one payload.");
        }

        var tables = payload.Tables;
        var fed = new List<(RestorePayload?, ProcessRequest, Task<ProcessResult>)>(_slots.Count);
        foreach (var slot in _slots)
        {
            var part = slot.Table is null ? payload : tables.Contains(slot.Table) ? payload.ForTable(slot.Table) : null;
            var what = slot.Table is null ? payload.Family.ToString() : $"{payload.Family}, table {slot.Table}";
            if (part is null)
            {
                _log($"{Path.GetFileName(Program)} ({what}): nothing to apply; its input is closed empty.");
            }
            else
            {
                logPart(part, what);
                slot.Input.Write(slot.Table is null ? part.Text : slot.Pending.Append("COMMIT\n").ToString());
                slot.Pending.Clear();
            }

            slot.Input.Complete();
            fed.Add((part, slot.Request, slot.Run));
        }

        return fed;
    }

    /// <summary>
    /// Abandons the processes: closes their input, without COMMIT when lines were already written (iptables-restore
    /// then stops with "COMMIT expected" and applies nothing), and waits for them to end.
    /// </summary>
    public async Task ReleaseAsync()
    {
        if (Interlocked.Exchange(ref _taken, 1) != 0)
        {
            return;
        }

        _log(_slots.Any(s => s.Started)
            ? $"{Path.GetFileName(Program)} ({Family}): abandoned; its input is closed without COMMIT, so none of the lines it was given is applied."
            : $"{Path.GetFileName(Program)} ({Family}): nothing to apply; the input of the process(es) started for it is closed empty.");
        foreach (var slot in _slots)
        {
            slot.Input.Complete();
        }

        foreach (var slot in _slots)
        {
            try
            {
                await slot.Run.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // It applied nothing; a process that could not even start has nothing to clean up either.
            }
        }
    }

    /// <summary>One process: the table it applies (null: the whole payload), its stdin and its run.</summary>
    internal sealed record Slot(string? Table, Input Input, ProcessRequest Request, Task<ProcessResult> Run)
    {
        /// <summary>How many payload lines have been looked at for this process.</summary>
        public int Scanned { get; set; }

        /// <summary>The table header has been written.</summary>
        public bool Started { get; set; }

        /// <summary>Lines not handed to the process yet.</summary>
        public StringBuilder Pending { get; } = new();
    }

    /// <summary>A process's stdin: text queued by the caller, written by the process runner as it comes.</summary>
    internal sealed class Input
    {
        private readonly Channel<string> _chunks = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        public void Write(string text) => _chunks.Writer.TryWrite(text);

        public void Complete() => _chunks.Writer.TryComplete();

        public async Task WriteToAsync(Stream stdin, CancellationToken ct)
        {
            var utf8 = new UTF8Encoding(false);
            var broken = false;
            await foreach (var chunk in _chunks.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (broken)
                {
                    continue; // the process has ended (it failed on an earlier line): drain, its exit code tells why
                }

                try
                {
                    await stdin.WriteAsync(utf8.GetBytes(chunk), ct).ConfigureAwait(false);
                    await stdin.FlushAsync(ct).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    broken = true;
                }
            }
        }
    }
}
