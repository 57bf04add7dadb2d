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
        "nft_ctx_get_error_buffer", "nft_ctx_output_set_flags", "nft_run_cmd_from_buffer",
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

                var rc = nft_run_cmd_from_buffer(ctx, commands);

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

    /// <summary>How a call shows in errors and logs: what the nft executable would have been asked.</summary>
    internal static string Command(bool json) => json ? "libnftables: nft -j" : "libnftables: nft -f -";

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
