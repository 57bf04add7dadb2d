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
        Line(Iptables.RestoreScriptGenerator.Assign("PSNF_NFT_NAMES", string.Join(' ', forwards.Select(d => d.Name))));
        Line(Iptables.RestoreScriptGenerator.Assign("PSNF_NFT_FILE", nftFile));
        var sysctls = new List<string>();
        if (forwards.Any(f => f.Family == IpFamily.IPv4))
        {
            sysctls.Add("net.ipv4.ip_forward");
        }

        if (forwards.Any(f => f.Family == IpFamily.IPv6))
        {
            sysctls.Add("net.ipv6.conf.all.forwarding");
        }

        Line(Iptables.RestoreScriptGenerator.Assign("PSNF_NFT_SYSCTL", string.Join(' ', sysctls)));
        Line("# True when the element or rule (nft list output) is tagged with a saved forward's name, ignoring case.");
        Line("psnf_nft_saved() {");
        Line("    case $1 in");
        foreach (var f in forwards)
        {
            Line($"        *'comment \"'{ForwardTag.TagPrefix}{PortForwardNames.ShellGlob(f.Name)}:*) return 0 ;;");
        }

        Line("    esac");
        Line("    return 1");
        Line("}");
        sb.Append(Body);
        return sb.ToString();
    }

    private const string Body = """

# psnf_nft_name LINE: sets psnf_n to the forward name in the comment tag of LINE.
psnf_nft_name() {
    psnf_n=${1#*comment \"psnf:v1:}
    psnf_n=${psnf_n%%:*}
}

# psnf_nft_read TEXT: reads `nft [-a] list table inet psnetfilter` and sets
#   psnf_nitems  "NAME WHERE ITEM" lines: each element and rule of a saved name as nft prints it (WHERE: its set,
#                map or chain; element counters and rule handles cut off, so that two loads compare)
#   psnf_ndels   "NAME COMMAND" lines: the command that deletes it (an element by key, a rule by handle)
#   psnf_ndisp   " TAG ... ": the fixed dispatch rules present (the comment after psnf:v1:@)
# nft prints each commented element on a line of its own; read strips the indentation.
psnf_nft_read() {
    psnf_nitems='' psnf_ndels='' psnf_ndisp=' ' psnf_in='' psnf_kind=''
    while read -r psnf_l; do
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
                psnf_ndisp="$psnf_ndisp$psnf_t "
                continue
                ;;
        esac
        [ -n "$psnf_kind" ] && psnf_nft_saved "$psnf_l" || continue
        psnf_nft_name "$psnf_l"
        if [ "$psnf_kind" = rule ]; then
            psnf_h=${psnf_l##*\# handle }
            psnf_l=${psnf_l% \# handle *}
            psnf_nitems="$psnf_nitems$psnf_n $psnf_in $psnf_l$psnf_nl"
            psnf_ndels="$psnf_ndels$psnf_n delete rule inet psnetfilter $psnf_in handle $psnf_h$psnf_nl"
        else
            psnf_l=${psnf_l#elements = \{ }
            psnf_l=${psnf_l%,}
            psnf_l=${psnf_l% \}}
            psnf_k=${psnf_l%% comment \"*}
            psnf_r=${psnf_l#"$psnf_k"}
            psnf_k=${psnf_k% counter packets * bytes *}
            psnf_nitems="$psnf_nitems$psnf_n $psnf_in $psnf_k$psnf_r$psnf_nl"
            psnf_ndels="$psnf_ndels$psnf_n delete element inet psnetfilter $psnf_in { $psnf_k }$psnf_nl"
        fi
    done <<PSNF_NFT
$1
PSNF_NFT
}

# psnf_nft_diff: sets psnf_diff to " NAME ... ", the names whose live parts (psnf_live) are not exactly the saved
# ones as nft prints them (learned by loading the file into a throwaway namespace): a part missing, changed or one
# too many. Without unshare, sort or uniq every saved and live name is replaced.
psnf_nft_diff() {
    psnf_diff=" $PSNF_NFT_NAMES "
    for psnf_n in $psnf_livenames; do
        psnf_diff="$psnf_diff$psnf_n "
    done
    command -v unshare >/dev/null 2>&1 && command -v sort >/dev/null 2>&1 && command -v uniq >/dev/null 2>&1 || return 1
    psnf_d=$(unshare -n /bin/sh -c 'nft -f "$1" >/dev/null && nft list table inet psnetfilter' psnf-probe "$PSNF_NFT_FILE") || return 1
    psnf_nft_read "$psnf_d"
    psnf_d=$({
        printf '%s' "$psnf_nitems" | sort | uniq -c
        printf '%s' "$psnf_live" | sort | uniq -c
    } | sort | uniq -u) || return 1
    psnf_diff=' '
    while read -r psnf_c psnf_n psnf_r; do
        [ -n "$psnf_n" ] || continue
        case $psnf_diff in *" $psnf_n "*) ;; *) psnf_diff="$psnf_diff$psnf_n " ;; esac
    done <<PSNF_DIFF
$psnf_d
PSNF_DIFF
}

# psnf_nft_lines: the transaction of a start over an existing table: the deletes of the names in psnf_diff, then
# the file's skeleton, the dispatch rules that are missing and the lines of the names in psnf_diff.
psnf_nft_lines() {
    while read -r psnf_n psnf_c; do
        [ -n "$psnf_n" ] || continue
        case $psnf_diff in *" $psnf_n "*) printf '%s\n' "$psnf_c" ;; esac
    done <<PSNF_DELS
$psnf_dels
PSNF_DELS
    while IFS= read -r psnf_l; do
        case $psnf_l in
            '' | '#'*) continue ;;
            *'comment "psnf:v1:@'*)
                psnf_t=${psnf_l#*comment \"psnf:v1:@} psnf_t=${psnf_t%%\"*}
                case $psnf_disp in *" $psnf_t "*) continue ;; esac
                ;;
            *'comment "psnf:v1:'*)
                psnf_nft_name "$psnf_l"
                case $psnf_diff in *" $psnf_n "*) ;; *) continue ;; esac
                ;;
        esac
        printf '%s\n' "$psnf_l"
    done <"$PSNF_NFT_FILE"
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
        if ! nft -f "$PSNF_NFT_FILE"; then
            psnf_err "nft -f $PSNF_NFT_FILE failed: nothing of it was applied (one transaction)"
            return 1
        fi
        psnf_log "nftables: restored $PSNF_NFT_NAMES (the table was not there: $PSNF_NFT_FILE loaded whole)"
        psnf_nft_forwarding
        return
    fi
    psnf_nft_read "$psnf_d"
    psnf_live=$psnf_nitems psnf_dels=$psnf_ndels psnf_disp=$psnf_ndisp psnf_livenames=''
    while read -r psnf_n psnf_r; do
        [ -n "$psnf_n" ] || continue
        case " $psnf_livenames " in *" $psnf_n "*) ;; *) psnf_livenames="$psnf_livenames $psnf_n" ;; esac
    done <<PSNF_LIVE
$psnf_live
PSNF_LIVE
    psnf_count=0
    if [ "$1" = stop ]; then
        psnf_diff=" $psnf_livenames "
    elif [ -z "$psnf_live" ]; then
        psnf_diff=" $PSNF_NFT_NAMES "
    elif ! psnf_nft_diff; then
        psnf_err "could not learn how nft prints the saved forwards (unshare -n, sort, uniq): their live parts are replaced"
    fi
    while read -r psnf_n psnf_r; do
        case $psnf_diff in *" $psnf_n "*) psnf_count=$((psnf_count + 1)) ;; esac
    done <<PSNF_DELS
$psnf_dels
PSNF_DELS
    psnf_kept=''
    for psnf_n in $PSNF_NFT_NAMES; do
        case $psnf_diff in *" $psnf_n "*) ;; *) psnf_kept="$psnf_kept${psnf_kept:+ }$psnf_n" ;; esac
    done
    if [ "$1" = stop ]; then
        if [ "$psnf_count" -gt 0 ] && ! psnf_nft_lines_stop | nft -f -; then
            psnf_err "nft -f failed: no part of the forwards was removed (one transaction)"
            return 1
        fi
        psnf_log "nftables: removed $psnf_count parts of $PSNF_NFT_NAMES"
        return 0
    fi
    if [ -n "${psnf_diff# }" ] || psnf_nft_disp_missing; then
        if ! psnf_nft_lines | nft -f -; then
            psnf_err "nft -f failed: nothing of it was applied (one transaction)"
            return 1
        fi
    fi
    psnf_log "nftables: restored $PSNF_NFT_NAMES (live as saved and left alone: ${psnf_kept:-none}; $psnf_count live parts of them replaced)"
    psnf_nft_forwarding
}

psnf_nft_lines_stop() {
    while read -r psnf_n psnf_c; do
        [ -n "$psnf_n" ] && printf '%s\n' "$psnf_c"
    done <<PSNF_DELS
$psnf_dels
PSNF_DELS
}

# psnf_nft_disp_missing: true when a dispatch rule of the file is not live (psnf_disp).
psnf_nft_disp_missing() {
    while IFS= read -r psnf_l; do
        case $psnf_l in
            'add rule '*'comment "psnf:v1:@'*)
                psnf_t=${psnf_l#*comment \"psnf:v1:@} psnf_t=${psnf_t%%\"*}
                case $psnf_disp in *" $psnf_t "*) ;; *) return 0 ;; esac
                ;;
        esac
    done <"$PSNF_NFT_FILE"
    return 1
}

psnf_nft_forwarding() {
    for psnf_s in $PSNF_NFT_SYSCTL; do
        psnf_forwarding "$psnf_s" || return 1
    done
}

""";
}
