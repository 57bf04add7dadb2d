using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace PSNetfilter.Core.Host;

/// <summary>
/// Lists the nf_tables chains of one family (table and chain names) with one netlink dump request
/// (NFT_MSG_GETCHAIN), in-process and inside the namespace (<see cref="NamespaceThread"/>). It answers
/// "does this family hold any module chain?" for the price of a few system calls instead of an
/// ip6tables-save process. Only the names are read; rules are always read with iptables-save.
/// </summary>
public static class NftChains
{
    private const int AfNetlink = 16;
    private const int SockRaw = 3;
    private const int SockCloexec = 0x80000;
    private const int NetlinkNetfilter = 12;
    private const ushort NfnlSubsysNftables = 10;
    private const ushort NftMsgGetChain = 4;
    private const ushort NlmFRequest = 0x1;
    private const ushort NlmFDump = 0x300;
    private const ushort NlmsgError = 2;
    private const ushort NlmsgDone = 3;
    private const ushort NftaChainTable = 1;
    private const ushort NftaChainName = 3;
    private const byte NfprotoUnspec = 0;
    private const byte NfprotoIpv4 = 2;
    private const byte NfprotoIpv6 = 10;

    /// <summary>The chains of <paramref name="family"/> in the namespace (null: the host's), as (table, chain).</summary>
    /// <exception cref="NetfilterException">The kernel did not answer the request (no nf_tables, say).</exception>
    public static Task<IReadOnlyList<(string Table, string Chain)>> ListAsync(string? networkNamespace, IpFamily family) =>
        NamespaceThread.RunAsync(networkNamespace, () => (IReadOnlyList<(string, string)>)List(family == IpFamily.IPv4 ? NfprotoIpv4 : NfprotoIpv6).Select(c => (c.Table, c.Chain)).ToList());

    /// <summary>
    /// The chains of every family (ip, ip6, inet, arp, bridge, netdev) in the namespace, as (family, table, chain)
    /// with the family named as nft names it: tells whether any table but iptables' own exists, without an nft process.
    /// </summary>
    public static Task<IReadOnlyList<(string Family, string Table, string Chain)>> ListAllAsync(string? networkNamespace) =>
        NamespaceThread.RunAsync(networkNamespace, () => (IReadOnlyList<(string, string, string)>)List(NfprotoUnspec).Select(c => (FamilyName(c.Family), c.Table, c.Chain)).ToList());

    private static string FamilyName(byte family) => family switch
    {
        1 => "inet",
        NfprotoIpv4 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        NfprotoIpv6 => "ip6",
        _ => family.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Synchronous system calls only (it runs on the namespace thread, which must not start runtime threads).</summary>
    private static List<(byte Family, string Table, string Chain)> List(byte family)
    {
        var fd = socket(AfNetlink, SockRaw | SockCloexec, NetlinkNetfilter);
        if (fd < 0)
        {
            throw Failure("socket", Marshal.GetLastPInvokeError());
        }

        try
        {
            // struct nlmsghdr (16 bytes) + struct nfgenmsg (4 bytes): dump every chain of the family.
            var request = new byte[20];
            BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(0), (uint)request.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(request.AsSpan(4), (ushort)((NfnlSubsysNftables << 8) | NftMsgGetChain));
            BinaryPrimitives.WriteUInt16LittleEndian(request.AsSpan(6), NlmFRequest | NlmFDump);
            BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(8), 1);
            request[16] = family;
            if (send(fd, request, request.Length, 0) != request.Length)
            {
                throw Failure("send", Marshal.GetLastPInvokeError());
            }

            var chains = new List<(byte, string, string)>();
            var buffer = new byte[64 * 1024];
            while (true)
            {
                var n = (int)recv(fd, buffer, buffer.Length, 0);
                if (n < 0)
                {
                    throw Failure("recv", Marshal.GetLastPInvokeError());
                }

                if (n == 0)
                {
                    return chains;
                }

                if (Parse(buffer.AsSpan(0, n), chains))
                {
                    return chains;
                }
            }
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>Adds the chains of one datagram of the dump; true once the dump is done.</summary>
    private static bool Parse(ReadOnlySpan<byte> data, List<(byte Family, string Table, string Chain)> chains)
    {
        var offset = 0;
        while (offset + 16 <= data.Length)
        {
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
            var type = BinaryPrimitives.ReadUInt16LittleEndian(data[(offset + 4)..]);
            if (length < 16 || offset + length > data.Length)
            {
                throw Failure("a malformed reply", 0);
            }

            if (type == NlmsgDone)
            {
                return true;
            }

            if (type == NlmsgError)
            {
                var error = length >= 20 ? BinaryPrimitives.ReadInt32LittleEndian(data[(offset + 16)..]) : 0;
                if (error != 0)
                {
                    throw Failure("the request", -error);
                }

                return true;
            }

            if (type == ((NfnlSubsysNftables << 8) | 3 /* NFT_MSG_NEWCHAIN */))
            {
                string? table = null, chain = null;
                var attr = offset + 20; // after nlmsghdr and nfgenmsg
                while (attr + 4 <= offset + length)
                {
                    var attrLength = BinaryPrimitives.ReadUInt16LittleEndian(data[attr..]);
                    var attrType = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(data[(attr + 2)..]) & 0x3FFF);
                    if (attrLength < 4 || attr + attrLength > offset + length)
                    {
                        break;
                    }

                    if (attrType is NftaChainTable or NftaChainName)
                    {
                        var text = data.Slice(attr + 4, attrLength - 4);
                        var end = text.IndexOf((byte)0);
                        var value = Encoding.ASCII.GetString(end < 0 ? text : text[..end]);
                        if (attrType == NftaChainTable)
                        {
                            table = value;
                        }
                        else
                        {
                            chain = value;
                        }
                    }

                    attr += (attrLength + 3) & ~3;
                }

                if (table is not null && chain is not null)
                {
                    chains.Add((data[offset + 16], table, chain)); // nfgenmsg.nfgen_family
                }
            }

            offset += (length + 3) & ~3;
        }

        return false;
    }

    private static NetfilterException Failure(string what, int errno) =>
        new("NftablesQueryFailed", FailureKind.OperationFailed, $"Listing the nf_tables chains over netlink failed at {what} (errno {errno}).");

    [DllImport("libc", SetLastError = true)]
    private static extern int socket(int domain, int type, int protocol);

    [DllImport("libc", SetLastError = true)]
    private static extern nint send(int fd, byte[] buffer, nint length, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern nint recv(int fd, byte[] buffer, nint length, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);
}
