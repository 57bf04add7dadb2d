using System.Runtime.InteropServices;

namespace PSNetfilter.Core.Host;

/// <summary>
/// nft commands in-process through libnftables (Debian's libnftables1, the library the nft executable is built
/// on): one <c>nft_run_cmd_from_buffer</c> is one transaction, exactly as one <c>nft -f</c>, without a process.
/// Every call makes its own context and frees it, so the netlink socket the context opens belongs to the network
/// namespace of the calling thread (see <see cref="InProcessNftRunner"/>, which calls this on a thread that
/// entered the namespace).
/// </summary>
/// <remarks>
/// A script is handed over as a file, not as a buffer: libnftables 1.0.6 (bookworm) reports errors in a buffer
/// without their location (no line number, and the first line of the buffer shown under the caret), while for a
/// file it prints "FILE:LINE:COLUMNS: Error:" as nft -f does. The file is a memfd (memory only, never on a disk),
/// read through /proc/self/fd. Listings, which need no line, go through <c>nft_run_cmd_from_buffer</c>.
/// Calls are serialised: libnftables 1.0.x keeps some state (symbol tables, the GMP allocator hooks) per process.
/// Everything here is synchronous system calls in the library: it starts no thread, so it may run on the
/// namespace thread.
/// </remarks>
public static class Libnftables
{
    /// <summary>The soname Debian's libnftables1 installs.</summary>
    public const string LibraryName = "libnftables.so.1";

    // include/nftables/libnftables.h: NFT_CTX_DEFAULT and NFT_CTX_OUTPUT_JSON.
    private const uint CtxDefault = 0;
    private const uint OutputJson = 1 << 4;

    private static readonly string[] Exports =
    {
        "nft_ctx_new", "nft_ctx_free", "nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_get_output_buffer",
        "nft_ctx_get_error_buffer", "nft_ctx_output_set_flags", "nft_run_cmd_from_buffer", "nft_run_cmd_from_filename",
    };

    private static readonly Lazy<string?> LoadFailure = new(() => Probe(LibraryName));
    private static readonly object Gate = new();

    /// <summary>True when the library loads and has every function used here; checked once per process.</summary>
    public static bool IsAvailable => LoadFailure.Value is null;

    /// <summary>Why the library is not available (null when it is): callers then run the nft executable.</summary>
    public static string? UnavailableReason => LoadFailure.Value;

    /// <summary>Null when <paramref name="library"/> loads and exports every function used here; otherwise why not.</summary>
    internal static string? Probe(string library)
    {
        if (!NativeLibrary.TryLoad(library, out var handle))
        {
            return $"{library} cannot be loaded (the library of the Debian package libnftables1 is not installed).";
        }

        var missing = Exports.Where(e => !NativeLibrary.TryGetExport(handle, e, out _)).ToList();
        return missing.Count == 0 ? null : $"{library} lacks {string.Join(", ", missing)}.";
    }

    /// <summary>
    /// Runs <paramref name="commands"/> (an nft script: one transaction, applied whole or not at all) on the calling
    /// thread, in that thread's network namespace. <paramref name="json"/>: listings print JSON (<c>nft -j</c>).
    /// </summary>
    /// <exception cref="NetfilterException">ToolNotInstalled: the library is not available; OperationFailed: no context.</exception>
    public static NftRunResult Run(string commands, bool json)
    {
        if (LoadFailure.Value is { } reason)
        {
            throw new NetfilterException("ToolNotInstalled", FailureKind.NotInstalled, reason, LibraryName);
        }

        lock (Gate)
        {
            var ctx = nft_ctx_new(CtxDefault);
            if (ctx == IntPtr.Zero)
            {
                throw new NetfilterException("NftContextFailed", FailureKind.OperationFailed, "libnftables could not make a context (nft_ctx_new).", LibraryName);
            }

            try
            {
                if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0)
                {
                    throw new NetfilterException("NftContextFailed", FailureKind.OperationFailed, "libnftables could not buffer its output (nft_ctx_buffer_output).", LibraryName);
                }

                if (json)
                {
                    nft_ctx_output_set_flags(ctx, OutputJson);
                }

                var rc = json ? nft_run_cmd_from_buffer(ctx, commands) : RunFromMemoryFile(ctx, commands);

                // Both buffers belong to the context: copy them before it is freed.
                var output = Marshal.PtrToStringUTF8(nft_ctx_get_output_buffer(ctx)) ?? string.Empty;
                var error = Marshal.PtrToStringUTF8(nft_ctx_get_error_buffer(ctx)) ?? string.Empty;
                return new NftRunResult(rc == 0, output, error) { Command = Command(json), ExitCode = rc == 0 ? 0 : 1 };
            }
            finally
            {
                nft_ctx_free(ctx);
            }
        }
    }

    /// <summary>Runs <paramref name="script"/> from a memfd holding it, so that errors name their line.</summary>
    private static int RunFromMemoryFile(IntPtr ctx, string script)
    {
        var fd = memfd_create("psnetfilter-nft", MfdCloexec);
        if (fd < 0)
        {
            throw new NetfilterException("NftContextFailed", FailureKind.OperationFailed, $"memfd_create failed (errno {Marshal.GetLastPInvokeError()}).", LibraryName);
        }

        using var file = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        RandomAccess.Write(file, System.Text.Encoding.UTF8.GetBytes(script), 0);
        return nft_run_cmd_from_filename(ctx, "/proc/self/fd/" + fd.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>How a call shows in errors and logs: what the nft executable would have been asked.</summary>
    internal static string Command(bool json) => json ? "libnftables: nft -j" : "libnftables: nft -f -";

    private const uint MfdCloexec = 1;

    [DllImport("libc", SetLastError = true)]
    private static extern int memfd_create([MarshalAs(UnmanagedType.LPUTF8Str)] string name, uint flags);

    [DllImport(LibraryName)]
    private static extern int nft_run_cmd_from_filename(IntPtr ctx, [MarshalAs(UnmanagedType.LPUTF8Str)] string filename);

    [DllImport(LibraryName)]
    private static extern IntPtr nft_ctx_new(uint flags);

    [DllImport(LibraryName)]
    private static extern void nft_ctx_free(IntPtr ctx);

    [DllImport(LibraryName)]
    private static extern int nft_ctx_buffer_output(IntPtr ctx);

    [DllImport(LibraryName)]
    private static extern int nft_ctx_buffer_error(IntPtr ctx);

    [DllImport(LibraryName)]
    private static extern IntPtr nft_ctx_get_output_buffer(IntPtr ctx);

    [DllImport(LibraryName)]
    private static extern IntPtr nft_ctx_get_error_buffer(IntPtr ctx);

    [DllImport(LibraryName)]
    private static extern void nft_ctx_output_set_flags(IntPtr ctx, uint flags);

    [DllImport(LibraryName)]
    private static extern int nft_run_cmd_from_buffer(IntPtr ctx, [MarshalAs(UnmanagedType.LPUTF8Str)] string buffer);
}
