using System.Text;

namespace PSNetfilter.Core.Backends.Nftables;

/// <summary>
/// The nftables part of a boot set: the nft file (<see cref="File"/>) and the section of the boot script that loads it
/// (<see cref="Section"/>, <c>psnf_nft start|stop</c>). No pwsh at boot: sh, nft, and unshare/sort/uniq when present.
/// <para>
/// The file is the whole table for the saved forwards, in <c>add</c> commands only (skeleton, dispatch rules, each
/// forward's elements and rules; <see cref="NftChangeScript.BootFile"/>). <b>start</b>, under the namespace flock:
/// <list type="bullet">
/// <item>when <c>table inet psnetfilter</c> does not exist (a boot, or after a <c>flush ruleset</c>), the file is
/// loaded as it is: one <c>nft -f</c>;</item>
/// <item>otherwise one <c>nft -a list table</c> gives the live elements and rules of the saved names (by their comment
/// tags, ignoring case), and the file loaded into a throwaway namespace (<c>unshare -n</c>) gives them as nft prints
/// them; a forward whose live parts print exactly as saved is left alone (its element counters too), and for the
/// others ONE transaction deletes their live parts (elements by key, rules by handle) and adds the saved ones, with
/// the skeleton and any dispatch rule that is missing. Parts of other names are never named.</item>
/// </list>
/// <b>stop</b> deletes the live parts of the saved names in one transaction and leaves the table. Every line names
/// <c>table inet psnetfilter</c>; nothing is flushed.
/// </para>
/// </summary>
public static class NftBootScript
{
    /// <summary>The nft file of a set's nftables forwards.</summary>
    public static string File(string unitName, IReadOnlyList<PortForwardDefinition> forwards)
    {
        var sb = new StringBuilder();
        sb.Append("# PSNetfilter boot set of ").Append(unitName).Append(", written by Install-PortForwardService: do not edit, install again to change it.\n");
        sb.Append("# Its script loads this file whole where table ").Append(NftTableLayout.Table).Append(" does not exist, and otherwise only the\n");
        sb.Append("# lines of the forwards that are not live as saved. Every line adds; nothing is flushed.\n");
        sb.Append(NftChangeScript.BootFile(forwards));
        return sb.ToString();
    }

    /// <summary>The data of the nftables forwards and the functions of <c>psnf_nft</c>.</summary>
    public static string Section(IReadOnlyList<PortForwardDefinition> forwards, string nftFile)
    {
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append('\n');
        Line(string.Empty);
        Line("# The saved forwards of the nftables backend, the file that holds them, and the sysctls their families need.");
        Line(BootScript.Assign("PSNF_NFT_NAMES", string.Join(' ', forwards.Select(d => d.Name))));
        Line(BootScript.Assign("PSNF_NFT_FILE", nftFile));
        var sysctls = new List<string>();
        if (forwards.Any(f => f.Family == IpFamily.IPv4))
        {
            sysctls.Add("net.ipv4.ip_forward");
        }

        if (forwards.Any(f => f.Family == IpFamily.IPv6))
        {
            sysctls.Add("net.ipv6.conf.all.forwarding");
        }

        Line(BootScript.Assign("PSNF_NFT_SYSCTL", string.Join(' ', sysctls)));
        Line("# The same names in lower case: names compare ignoring case (a live 'WEB' is the saved 'web').");
        Line(BootScript.Assign("PSNF_NFT_LOWER", string.Join(' ', forwards.Select(d => d.Name.ToLowerInvariant()))));
        sb.Append(Body);
        return sb.ToString();
    }

    private const string Body = """

# psnf_nft_read TEXT: reads `nft [-a] list table inet psnetfilter` and prints, for each element and rule of a saved
# name (the name in its comment tag, compared in lower case with PSNF_NFT_LOWER):
#   I NAME WHERE ITEM   the part as nft prints it (WHERE: its set, map or chain; element counters and rule handles
#                       cut off, so that two loads compare)
#   D NAME COMMAND      the command that deletes it (an element by key, a rule by handle)
# and for each fixed dispatch rule present: P TAG. NAME is in lower case. nft prints each commented element on a
# line of its own; read strips the indentation. One pass, output collected once: linear in the table.
psnf_nft_read() {
    psnf_in='' psnf_kind=''
    while read -r psnf_l <&3 && read -r psnf_lc <&4; do
        case $psnf_l in
            'map '* | 'set '*)
                psnf_in=${psnf_l#* } psnf_in=${psnf_in%% *} psnf_kind=element
                continue
                ;;
            'chain '*)
                psnf_in=${psnf_l#chain } psnf_in=${psnf_in%% *} psnf_kind=rule
                continue
                ;;
            *'comment "psnf:v1:@'*)
                psnf_t=${psnf_l#*comment \"psnf:v1:@} psnf_t=${psnf_t%%\"*}
                printf 'P %s\n' "$psnf_t"
                continue
                ;;
            *'comment "psnf:v1:'*) [ -n "$psnf_kind" ] || continue ;;
            *) continue ;;
        esac
        psnf_n=${psnf_lc#*comment \"psnf:v1:} psnf_n=${psnf_n%%:*}
        case " $PSNF_NFT_LOWER " in *" $psnf_n "*) ;; *) continue ;; esac
        if [ "$psnf_kind" = rule ]; then
            psnf_h=${psnf_l##*\# handle }
            psnf_l=${psnf_l% \# handle *}
            printf 'I %s %s %s\nD %s delete rule inet psnetfilter %s handle %s\n' "$psnf_n" "$psnf_in" "$psnf_l" "$psnf_n" "$psnf_in" "$psnf_h"
        else
            psnf_l=${psnf_l#elements = \{ }
            psnf_l=${psnf_l%,}
            psnf_l=${psnf_l% \}}
            psnf_k=${psnf_l%% comment \"*}
            psnf_r=${psnf_l#"$psnf_k"}
            psnf_k=${psnf_k% counter packets * bytes *}
            printf 'I %s %s %s%s\nD %s delete element inet psnetfilter %s { %s }\n' "$psnf_n" "$psnf_in" "$psnf_k" "$psnf_r" "$psnf_n" "$psnf_in" "$psnf_k"
        fi
    done 3<<PSNF_NFT 4<<PSNF_NFTLC
$1
PSNF_NFT
$(printf '%s\n' "$1" | tr 'A-Z' 'a-z')
PSNF_NFTLC
}

# psnf_nft_pick PREFIX: the lines of psnf_read that start with "PREFIX ", without it.
psnf_nft_pick() {
    printf '%s\n' "$psnf_read" | sed -n "s/^$1 //p"
}

# psnf_nft_diff: sets psnf_diff to " NAME ... ", the names whose live parts (psnf_live) are not exactly the saved
# ones as nft prints them (learned by loading the file into a throwaway namespace): a part missing, changed or one
# too many. Without unshare every saved and live name is replaced.
psnf_nft_diff() {
    psnf_diff=" $PSNF_NFT_LOWER $psnf_livenames "
    command -v unshare >/dev/null 2>&1 || return 1
    psnf_d=$(unshare -n /bin/sh -c 'nft -f "$1" >/dev/null && nft list table inet psnetfilter' psnf-probe "$PSNF_NFT_FILE") || return 1
    psnf_read=$(psnf_nft_read "$psnf_d")
    psnf_d=$({
        psnf_nft_pick I | sort | uniq -c
        printf '%s\n' "$psnf_live" | sort | uniq -c
    } | sort | uniq -u | while read -r psnf_c psnf_n psnf_r; do printf '%s\n' "$psnf_n"; done | sort -u) || return 1
    psnf_diff=" $(printf '%s' "$psnf_d" | tr '\n' ' ') "
}

# psnf_nft_lines: the transaction of a start over an existing table: the deletes of the names in psnf_diff, then
# the file's skeleton, the dispatch rules that are missing and the lines of the names in psnf_diff.
psnf_nft_lines() {
    while read -r psnf_n psnf_c; do
        case $psnf_diff in *" $psnf_n "*) printf '%s\n' "$psnf_c" ;; esac
    done <<PSNF_DELS
$psnf_dels
PSNF_DELS
    while IFS= read -r psnf_l <&3 && IFS= read -r psnf_lc <&4; do
        case $psnf_l in
            '' | '#'*) continue ;;
            *'comment "psnf:v1:@'*)
                psnf_t=${psnf_l#*comment \"psnf:v1:@} psnf_t=${psnf_t%%\"*}
                case $psnf_disp in *" $psnf_t "*) continue ;; esac
                ;;
            *'comment "psnf:v1:'*)
                psnf_n=${psnf_lc#*comment \"psnf:v1:} psnf_n=${psnf_n%%:*}
                case $psnf_diff in *" $psnf_n "*) ;; *) continue ;; esac
                ;;
        esac
        printf '%s\n' "$psnf_l"
    done 3<"$PSNF_NFT_FILE" 4<<PSNF_LC
$(tr 'A-Z' 'a-z' <"$PSNF_NFT_FILE")
PSNF_LC
}

# psnf_nft_disp_missing: true when a dispatch rule of the file (they come before the forwards) is not live.
psnf_nft_disp_missing() {
    while IFS= read -r psnf_l; do
        case $psnf_l in
            'add rule '*'comment "psnf:v1:@'*)
                psnf_t=${psnf_l#*comment \"psnf:v1:@} psnf_t=${psnf_t%%\"*}
                case $psnf_disp in *" $psnf_t "*) ;; *) return 0 ;; esac
                ;;
            *'comment "psnf:v1:'*) return 1 ;;
        esac
    done <"$PSNF_NFT_FILE"
    return 1
}

psnf_nft_forwarding() {
    for psnf_s in $PSNF_NFT_SYSCTL; do
        psnf_forwarding "$psnf_s" || return 1
    done
}

# psnf_nft start|stop: the nftables part of the set, when it has one.
psnf_nft() {
    [ -n "$PSNF_NFT_NAMES" ] || return 0
    if ! command -v nft >/dev/null 2>&1; then
        psnf_err "nft was not found: install the nftables package"
        return 1
    fi
    if ! psnf_d=$(nft -a list table inet psnetfilter 2>/dev/null); then
        if [ "$1" = stop ]; then
            psnf_log "nftables: table inet psnetfilter does not exist, so none of $PSNF_NFT_NAMES is live"
            return 0
        fi
        # A boot, or after a flush ruleset: the file is the whole table.
        if ! nft -f "$PSNF_NFT_FILE"; then
            psnf_err "nft -f $PSNF_NFT_FILE failed: nothing of it was applied (one transaction)"
            return 1
        fi
        psnf_log "nftables: restored $PSNF_NFT_NAMES (the table was not there: $PSNF_NFT_FILE loaded whole)"
        psnf_nft_forwarding
        return
    fi
    psnf_read=$(psnf_nft_read "$psnf_d")
    psnf_live=$(psnf_nft_pick I)
    psnf_dels=$(psnf_nft_pick D)
    psnf_disp=" $(psnf_nft_pick P | tr '\n' ' ') "
    psnf_livenames=$(printf '%s\n' "$psnf_live" | while read -r psnf_n psnf_r; do [ -z "$psnf_n" ] || printf '%s\n' "$psnf_n"; done | sort -u | tr '\n' ' ')
    if [ "$1" = stop ]; then
        psnf_diff=" $psnf_livenames "
    elif [ -z "$psnf_live" ]; then
        psnf_diff=" $PSNF_NFT_LOWER "
    elif ! psnf_nft_diff; then
        psnf_err "could not learn how nft prints the saved forwards (unshare -n): their live parts are replaced"
    fi
    psnf_count=0
    while read -r psnf_n psnf_r; do
        case $psnf_diff in *" $psnf_n "*) psnf_count=$((psnf_count + 1)) ;; esac
    done <<PSNF_DELS
$psnf_dels
PSNF_DELS
    psnf_kept=''
    for psnf_n in $PSNF_NFT_LOWER; do
        case $psnf_diff in *" $psnf_n "*) ;; *) psnf_kept="$psnf_kept${psnf_kept:+ }$psnf_n" ;; esac
    done
    if [ "$1" = stop ]; then
        if [ "$psnf_count" -gt 0 ] && ! printf '%s\n' "$psnf_dels" | while read -r psnf_n psnf_c; do printf '%s\n' "$psnf_c"; done | nft -f -; then
            psnf_err "nft -f failed: no part of the forwards was removed (one transaction)"
            return 1
        fi
        psnf_log "nftables: removed $psnf_count parts of $PSNF_NFT_NAMES"
        return 0
    fi
    case $psnf_diff in *[!\ ]*) psnf_work=1 ;; *) psnf_work='' ;; esac
    if [ -n "$psnf_work" ] || psnf_nft_disp_missing; then
        if ! psnf_nft_lines | nft -f -; then
            psnf_err "nft -f failed: nothing of it was applied (one transaction)"
            return 1
        fi
    fi
    psnf_log "nftables: restored $PSNF_NFT_NAMES (live as saved and left alone: ${psnf_kept:-none}; $psnf_count live parts of them replaced)"
    psnf_nft_forwarding
}

""";
}
