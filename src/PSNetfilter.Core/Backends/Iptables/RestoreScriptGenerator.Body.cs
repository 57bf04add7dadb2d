namespace PSNetfilter.Core.Backends.Iptables;

/// <summary>The fixed part of the iptables section of the boot-set script (see <see cref="RestoreScriptGenerator"/>).</summary>
public static partial class RestoreScriptGenerator
{
    /// <summary>The iptables functions, the same in every boot set; <c>psnf_iptables start|stop</c> is what the script's main part calls.</summary>
    private const string Body = """
# The backend's tools, chosen as PSNetfilter chooses them: `iptables -V` names the host's alternative
# (nf_tables or legacy); PSNETFILTER_IPTABLES_BACKEND=nft|legacy overrides it.
psnf_backend() {
    case ${PSNETFILTER_IPTABLES_BACKEND:-} in
        nft | legacy) psnf_be=$PSNETFILTER_IPTABLES_BACKEND ;;
        *)
            case $(iptables -V 2>/dev/null) in
                *legacy*) psnf_be=legacy ;;
                *) psnf_be=nft ;;
            esac
            ;;
    esac
}

# psnf_tool iptables -save: sets psnf_t to iptables-nft-save, or iptables-save when that is missing.
psnf_tool() {
    for psnf_t in "$1-$psnf_be$2" "$1$2"; do
        if command -v "$psnf_t" >/dev/null 2>&1; then
            return 0
        fi
    done
    psnf_err "$1$2 was not found: install the iptables package"
    return 1
}

# psnf_scan TABLE reads `iptables-save -t TABLE` in one pass and sets
#   psnf_chains  " C ... "      the module chains that exist
#   psnf_full    " C ... "      the module chains that hold at least one rule
#   psnf_links   " P>C@N ... "  jumps to module chains: rule N of P (a module chain, or the built-in chain
#                               of a hook), highest N first within each P
#   psnf_dels    "=NAME -D C N" lines for the rules tagged with a saved name, highest N first within each C
#   psnf_live    "TABLE RULE" lines: those rules as iptables-save prints them (added to, never reset here)
# Positions count the rules of each chain, which iptables-save prints together (checked).
psnf_scan() {
    if ! psnf_d=$("$psnf_save" -t "$1"); then
        psnf_err "$psnf_save -t $1 failed"
        return 1
    fi
    psnf_chains=' ' psnf_full=' ' psnf_links=' ' psnf_dels='' psnf_seen=' ' psnf_cur='' psnf_pos=0
    while IFS= read -r psnf_l; do
        case $psnf_l in
            :PSNF-*)
                psnf_c=${psnf_l#:}
                psnf_chains="$psnf_chains${psnf_c%% *} "
                ;;
            '-A '*)
                psnf_c=${psnf_l#-A }
                psnf_c=${psnf_c%% *}
                if [ "$psnf_c" != "$psnf_cur" ]; then
                    case $psnf_seen in
                        *" $psnf_c "*)
                            psnf_err "$psnf_save printed rules of $psnf_c in two places, so positions are not certain: nothing changed"
                            return 1
                            ;;
                    esac
                    psnf_seen="$psnf_seen$psnf_c " psnf_cur=$psnf_c psnf_pos=0
                fi
                psnf_pos=$((psnf_pos + 1))
                case $psnf_c in
                    PSNF-*)
                        case $psnf_full in *" $psnf_c "*) ;; *) psnf_full="$psnf_full$psnf_c " ;; esac
                        if psnf_saved "$psnf_l"; then
                            psnf_name "$psnf_l"
                            psnf_dels="=$psnf_n -D $psnf_c $psnf_pos$psnf_nl$psnf_dels"
                            psnf_live="$psnf_live$1 $psnf_l$psnf_nl"
                            continue
                        fi
                        case $psnf_l in *psnf:v1:*) continue ;; esac
                        psnf_t=${psnf_l##* -j }
                        ;;
                    *)
                        psnf_t=${psnf_l#"-A $psnf_c -j "}
                        psnf_hookjump "$psnf_c" "$psnf_t" || continue
                        ;;
                esac
                case $psnf_t in
                    PSNF-*)
                        case $psnf_t in
                            *[!A-Za-z0-9_-]*) ;;
                            *) psnf_links=" $psnf_c>$psnf_t@$psnf_pos$psnf_links" ;;
                        esac
                        ;;
                esac
                ;;
        esac
    done <<PSNF_DUMP
$psnf_d
PSNF_DUMP
}

# psnf_need CHAIN: declares CHAIN in the payload unless it exists. Declaring flushes a chain, so this is
# done only for a chain that is not there.
psnf_need() {
    case $psnf_chains in
        *" $1 "*) ;;
        *)
            psnf_decl="$psnf_decl:$1 - [0:0]$psnf_nl"
            psnf_chains="$psnf_chains$1 "
            ;;
    esac
}

# psnf_section TABLE TEXT: adds a table section to the payload unless TEXT is empty.
psnf_section() {
    if [ -n "$2" ]; then
        psnf_payload="$psnf_payload*$1$psnf_nl$2COMMIT$psnf_nl"
    fi
}

# psnf_name LINE: sets psnf_n to the forward name in the tag of LINE (an iptables-save line or a saved rule).
psnf_name() {
    psnf_n=${1#*psnf:v1:}
    psnf_n=${psnf_n%%:*}
}

# psnf_pick TEXT: sets psnf_o to the lines of TEXT that belong to a name in psnf_diff (" NAME ... "), and
# adds their number to psnf_count. A line is "=NAME -D C N" (a delete: the name is cut off; '=' is in no name,
# so a forward named -A is no rule) or a saved rule ("-A CHAIN ...").
psnf_pick() {
    psnf_o=''
    while IFS= read -r psnf_l; do
        case $psnf_l in
            '') continue ;;
            =*)
                psnf_n=${psnf_l%% *} psnf_l=${psnf_l#* }
                psnf_n=${psnf_n#=}
                case $psnf_diff in *" $psnf_n "*) psnf_count=$((psnf_count + 1)) ;; esac
                ;;
            *) psnf_name "$psnf_l" ;;
        esac
        case $psnf_diff in *" $psnf_n "*) psnf_o="$psnf_o$psnf_l$psnf_nl" ;; esac
    done <<PSNF_PICK
$1
PSNF_PICK
}

# psnf_probe IPV4|IPV6: sets psnf_expect to the family's saved rules as "TABLE RULE" lines in the exact form
# iptables-save prints them, learned by loading them into a throwaway network namespace (unshare -n) with the
# tools that read the live rules. Fails (and nothing is compared) when that is not possible here.
psnf_probe() {
    psnf_expect='' psnf_pl=''
    for psnf_tb in $PSNF_TABLES; do
        eval "psnf_r=\$PSNF_$1_${psnf_tb}_RULES"
        [ -n "$psnf_r" ] || continue
        psnf_decl=' '
        psnf_pl="$psnf_pl*$psnf_tb$psnf_nl"
        while read -r psnf_a psnf_c psnf_s; do
            case $psnf_decl in
                *" $psnf_c "*) ;;
                *) psnf_decl="$psnf_decl$psnf_c " psnf_pl="$psnf_pl:$psnf_c - [0:0]$psnf_nl" ;;
            esac
        done <<PSNF_RULES
$psnf_r
PSNF_RULES
        psnf_pl="$psnf_pl$psnf_r${psnf_nl}COMMIT$psnf_nl"
    done
    command -v unshare >/dev/null 2>&1 && command -v sort >/dev/null 2>&1 && command -v uniq >/dev/null 2>&1 || return 1
    psnf_d=$(printf '%s' "$psnf_pl" | unshare -n /bin/sh -c '
        r=$1 s=$2
        shift 2
        "$r" -w >/dev/null 2>&1 || exit 1
        for t; do "$s" -t "$t" 2>/dev/null || exit 1; done' psnf-probe "$psnf_restore" "$psnf_save" $PSNF_TABLES) || return 1
    psnf_tb=''
    while IFS= read -r psnf_l; do
        case $psnf_l in
            '*'*) psnf_tb=${psnf_l#\*} ;;
            '-A PSNF-'*) psnf_expect="$psnf_expect$psnf_tb $psnf_l$psnf_nl" ;;
        esac
    done <<PSNF_DUMP
$psnf_d
PSNF_DUMP
    [ -n "$psnf_expect" ]
}

# psnf_compare NAMES: sets psnf_diff to " NAME ... ", the saved names whose live rules (psnf_live) are not
# exactly their saved rules as printed (psnf_expect): a rule missing, changed, moved to another chain, or
# one copy too many. Both sides are counted per distinct line (sort | uniq -c); a counted line found on one
# side only names its forward. Names left out of psnf_diff are live as saved and are not touched.
psnf_compare() {
    psnf_diff=' '
    psnf_d=$({
        printf '%s' "$psnf_expect" | sort | uniq -c
        printf '%s' "$psnf_live" | sort | uniq -c
    } | sort | uniq -u) || return 1
    while IFS= read -r psnf_l; do
        [ -n "$psnf_l" ] || continue
        psnf_name "$psnf_l"
        case $psnf_diff in *" $psnf_n "*) ;; *) psnf_diff="$psnf_diff$psnf_n " ;; esac
    done <<PSNF_DIFF
$psnf_d
PSNF_DIFF
    psnf_kept=''
    for psnf_n in $1; do
        case $psnf_diff in *" $psnf_n "*) ;; *) psnf_kept="$psnf_kept${psnf_kept:+ }$psnf_n" ;; esac
    done
}

# psnf_main ACTION TABLE HOOKS TREE RULES: the TABLE section of the main transaction. start: missing
# chains and jumps, the deletes and the saved rules of the names in psnf_diff; stop: the deletes.
psnf_main() {
    psnf_scan "$2" || return 1
    psnf_pick "$psnf_dels"
    psnf_dels=$psnf_o
    psnf_decl='' psnf_ins='' psnf_app=''
    if [ "$1" = start ]; then
        while read -r psnf_b psnf_c; do
            [ -n "$psnf_c" ] || continue
            psnf_need "$psnf_c"
            case $psnf_links in
                *" $psnf_b>$psnf_c@"*) ;;
                *) psnf_ins="$psnf_ins-I $psnf_b 1 -j $psnf_c$psnf_nl" ;;
            esac
        done <<PSNF_HOOKS
$3
PSNF_HOOKS
        while read -r psnf_p psnf_c psnf_s; do
            [ -n "$psnf_s" ] || continue
            psnf_need "$psnf_c"
            case $psnf_links in
                *" $psnf_p>$psnf_c@"*) ;;
                *)
                    psnf_app="$psnf_app-A $psnf_p $psnf_s$psnf_nl"
                    psnf_links=" $psnf_p>$psnf_c@0$psnf_links"
                    ;;
            esac
        done <<PSNF_TREE
$4
PSNF_TREE
        psnf_pick "$5"
        psnf_app="$psnf_app$psnf_o"
    fi
    psnf_section "$2" "$psnf_decl$psnf_ins$psnf_dels$psnf_app"
}

# psnf_prune ACTION TABLE: the TABLE section that removes module chains that are empty now, each with the
# jumps that lead to it: dispatch chains, and with stop the hooked chains too.
psnf_prune() {
    psnf_scan "$2" || return 1
    psnf_empty=' ' psnf_x='' psnf_body=''
    for psnf_c in $psnf_chains; do
        case $psnf_full in *" $psnf_c "*) continue ;; esac
        if psnf_dispatch "$psnf_c" || { [ "$1" = stop ] && psnf_hooked "$psnf_c"; }; then
            psnf_empty="$psnf_empty$psnf_c "
            psnf_x="$psnf_x-X $psnf_c$psnf_nl"
        fi
    done
    for psnf_e in $psnf_links; do
        psnf_c=${psnf_e#*>}
        case $psnf_empty in
            *" ${psnf_c%@*} "*) psnf_body="$psnf_body-D ${psnf_e%%>*} ${psnf_e##*@}$psnf_nl" ;;
        esac
    done
    psnf_section "$2" "$psnf_body$psnf_x"
}

# psnf_apply: sends the payload to ONE iptables-restore --noflush.
psnf_apply() {
    if ! printf '%s' "$psnf_payload" | "$psnf_restore" -w --noflush; then
        psnf_err "$psnf_restore -w --noflush failed on this input:"
        printf '%s' "$psnf_payload" >&2
        return 1
    fi
}

# psnf_family ACTION IPV4|IPV6 iptables|ip6tables: the family's main transaction, in which its deletes and
# adds are applied together, then the rounds that remove chains left empty (deepest first).
psnf_family() {
    psnf_tool "$3" -save || return 1
    psnf_save=$psnf_t
    psnf_tool "$3" -restore || return 1
    psnf_restore=$psnf_t
    eval "psnf_names=\$PSNF_$2_NAMES"
    psnf_payload='' psnf_count=0 psnf_diff=" $psnf_names " psnf_kept='' psnf_live=''
    if [ "$1" = start ]; then
        # A forward that is live exactly as saved is left alone: its rules keep their place and counters.
        for psnf_tb in $PSNF_TABLES; do
            psnf_scan "$psnf_tb" || return 1
        done
        if ! { psnf_probe "$2" && psnf_compare "$psnf_names"; }; then
            psnf_err "could not learn how $psnf_save prints the saved rules (unshare -n, sort, uniq): their live copies are replaced"
            psnf_diff=" $psnf_names " psnf_kept=''
        fi
    fi
    for psnf_tb in $PSNF_TABLES; do
        eval "psnf_h=\$PSNF_$2_${psnf_tb}_HOOKS psnf_tr=\$PSNF_$2_${psnf_tb}_TREE psnf_r=\$PSNF_$2_${psnf_tb}_RULES"
        psnf_main "$1" "$psnf_tb" "$psnf_h" "$psnf_tr" "$psnf_r" || return 1
    done
    if [ -n "$psnf_payload" ]; then
        psnf_apply || return 1
    fi
    psnf_round=0
    while [ "$psnf_round" -lt 5 ]; do
        psnf_round=$((psnf_round + 1))
        psnf_payload=''
        for psnf_tb in $PSNF_TABLES; do
            psnf_prune "$1" "$psnf_tb" || return 1
        done
        if [ -z "$psnf_payload" ]; then
            break
        fi
        if ! psnf_apply; then
            psnf_err "empty module chains were left in place (the forwards are as they should be)"
            break
        fi
    done
}

# psnf_drops iptables|ip6tables: true when iptables' filter FORWARD drops (its policy DROP, or a DROP or REJECT rule
# in it): then the nftables forwards need their accepts there too (IptablesForwardMirror). False, running nothing,
# where the iptables tools are not installed.
psnf_drops() {
    command -v "$1" >/dev/null 2>&1 || return 1
    psnf_tool "$1" -save 2>/dev/null || return 1
    psnf_d=$("$psnf_t" -t filter 2>/dev/null) || return 1
    while IFS= read -r psnf_l; do
        case $psnf_l in
            ':FORWARD DROP '* | '-A FORWARD '*' -j DROP'* | '-A FORWARD '*' -j REJECT'*) return 0 ;;
        esac
    done <<PSNF_DUMP
$psnf_d
PSNF_DUMP
    return 1
}

# psnf_iptables start|stop: the iptables part of the set: its iptables forwards and, where iptables' filter FORWARD
# drops (at stop: always), the FORWARD accepts of its nftables forwards (the data of key IPV4M/IPV6M).
psnf_iptables() {
    psnf_irc=0 psnf_bd=''
    for psnf_fam in IPV4:IPv4:iptables:net.ipv4.ip_forward IPV6:IPv6:ip6tables:net.ipv6.conf.all.forwarding; do
        psnf_tag=${psnf_fam%%:*} psnf_fam=${psnf_fam#*:}
        psnf_label=${psnf_fam%%:*} psnf_fam=${psnf_fam#*:}
        psnf_cmd=${psnf_fam%%:*} psnf_key=${psnf_fam#*:}
        eval "psnf_own=\$PSNF_${psnf_tag}_NAMES psnf_mir=\$PSNF_${psnf_tag}_MIRRORS"
        if [ -n "$psnf_mir" ]; then
            [ -n "$psnf_bd" ] || { psnf_backend; psnf_bd=1; }
            if { [ "$1" = stop ] && command -v "$psnf_cmd" >/dev/null 2>&1; } || { [ "$1" = start ] && psnf_drops "$psnf_cmd"; }; then
                psnf_tag=${psnf_tag}M
                psnf_label="$psnf_label (with the FORWARD accepts of $psnf_mir)"
            fi
        fi
        eval "psnf_names=\$PSNF_${psnf_tag}_NAMES"
        [ -n "$psnf_names" ] || continue
        [ -n "$psnf_bd" ] || { psnf_backend; psnf_bd=1; }
        if ! psnf_family "$1" "$psnf_tag" "$psnf_cmd"; then
            psnf_irc=1
        elif [ "$1" = start ]; then
            psnf_log "$psnf_label: restored $psnf_names ($psnf_cmd $psnf_be; live as saved and left alone: ${psnf_kept:-none}; $psnf_count live rules of them replaced)"
            [ -z "$psnf_own" ] || psnf_forwarding "$psnf_key" || psnf_irc=1
        else
            psnf_log "$psnf_label: removed $psnf_count rules of $psnf_names"
        fi
    done
    return $psnf_irc
}

""";
}
