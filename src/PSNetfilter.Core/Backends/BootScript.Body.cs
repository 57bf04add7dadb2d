namespace PSNetfilter.Core.Backends;

/// <summary>The fixed main part of the boot-set script (see <see cref="BootScript"/>).</summary>
public static partial class BootScript
{
    /// <summary>Logging, the namespace lock, forwarding, and start/stop, which call each backend's section.</summary>
    private const string Body = """

psnf_nl='
'

psnf_log() { echo "psnetfilter: $*"; }
psnf_err() { echo "psnetfilter: $*" >&2; }

# The flock PSNetfilter's cmdlets take on the namespace, so that positions read here stay valid. The lock file
# of a namespace that no longer exists may be removed (under its flock) while this waits for it: the flock is
# then on a file no longer at the path, so it is taken again on the file that is there now.
psnf_lock() {
    [ -d "${PSNF_LOCK%/*}" ] || mkdir -p "${PSNF_LOCK%/*}" 2>/dev/null
    command -v flock >/dev/null 2>&1 || return 0
    psnf_i=0
    while [ "$psnf_i" -lt 10 ] && (: >>"$PSNF_LOCK") 2>/dev/null; do
        exec 9>>"$PSNF_LOCK"
        if ! flock -w 60 9; then
            psnf_err "another PSNetfilter process has held $PSNF_LOCK for more than 60 s"
            exit 1
        fi
        if [ ! -e /proc/self/fd/9 ] || [ /proc/self/fd/9 -ef "$PSNF_LOCK" ]; then
            return 0
        fi
        psnf_i=$((psnf_i + 1))
    done
}

# psnf_forwarding KEY: sets the sysctl to 1 (never back to 0: other programs may rely on it).
# Written to /proc/sys as sysctl does (no process at boot); sysctl itself where that file cannot be written.
psnf_forwarding() {
    psnf_p=/proc/sys psnf_ifs=$IFS
    IFS=.
    for psnf_part in $1; do
        psnf_p="$psnf_p/$psnf_part"
    done
    IFS=$psnf_ifs
    if [ -w "$psnf_p" ] && { echo 1 >"$psnf_p"; } 2>/dev/null; then
        return 0
    fi
    if command -v sysctl >/dev/null 2>&1 && sysctl -q -w "$1=1"; then
        return 0
    fi
    psnf_err "could not set $1=1: forwarded packets will not be routed"
    return 1
}

# psnf_start start|reload: reload is start for a unit that is already active (systemd's ExecReload=, after a
# firewall manager reloaded or restarted): the same work, but the keep flag of a stop under way stays.
psnf_start() {
    psnf_lock
    [ "$1" = reload ] || rm -f "$PSNF_KEEP"
    psnf_rc=0
    psnf_iptables start || psnf_rc=1
    psnf_nft start || psnf_rc=1
    return $psnf_rc
}

psnf_stop() {
    psnf_lock
    if [ -e "$PSNF_KEEP" ]; then
        rm -f "$PSNF_KEEP"
        psnf_log "stop: the forwards stay in place, as Uninstall-PortForwardService was asked"
        return 0
    fi
    psnf_rc=0
    psnf_iptables stop || psnf_rc=1
    psnf_nft stop || psnf_rc=1
    return $psnf_rc
}

case ${1:-} in
    start | reload) psnf_start "$1" ;;
    stop) psnf_stop ;;
    *)
        echo "usage: sh $0 start|reload|stop" >&2
        exit 2
        ;;
esac

""";
}
