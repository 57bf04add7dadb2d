#!/usr/bin/env bash
# Regenerates the golden `iptables-save -c` dumps in this directory.
#
# For each backend (nft, legacy) every golden file is produced in its own
# fresh, throw-away network namespace named psnf-gold-<random>, so the host's
# (root namespace) rules are never read or changed, and the two backends are
# never mixed in one namespace. No interface is created and no traffic is sent.
#
# Usage (as root):  tests/PSNetfilter.Tests/Golden/make-golden.sh
# Needs: ip (iproute2), iptables 1.8.x with both the -nft and -legacy tools.
set -euo pipefail

if [[ ${EUID:-$(id -u)} -ne 0 ]]; then
    echo "make-golden.sh: must be run as root (needs ip netns)" >&2
    exit 1
fi

golden_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$golden_dir/../../.." && pwd)
foreign_dir=$repo_root/tests/fixtures/foreign
owned_dir=$repo_root/tests/fixtures/owned

foreign_v4=(
    "$foreign_dir/docker.v4.rules"
    "$foreign_dir/libvirt.v4.rules"
    "$foreign_dir/kube-proxy.v4.rules"
    "$foreign_dir/exotic.v4.rules"
)
foreign_v6=(
    "$foreign_dir/docker.v6.rules"
)
owned_v4=$owned_dir/owned.v4.rules
owned_v6=$owned_dir/owned.v6.rules

for f in "${foreign_v4[@]}" "${foreign_v6[@]}" "$owned_v4" "$owned_v6"; do
    [[ -r $f ]] || { echo "make-golden.sh: missing fixture $f" >&2; exit 1; }
done
for tool in ip iptables-nft-restore iptables-nft-save ip6tables-nft-restore ip6tables-nft-save \
            iptables-legacy-restore iptables-legacy-save ip6tables-legacy-restore ip6tables-legacy-save; do
    command -v "$tool" >/dev/null || { echo "make-golden.sh: $tool not found" >&2; exit 1; }
done

# ---------------------------------------------------------------- namespaces
declare -a created_ns=()

cleanup() {
    local ns
    for ns in "${created_ns[@]}"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -f "$golden_dir"/nft/*.tmp "$golden_dir"/legacy/*.tmp
}
trap cleanup EXIT

# new_ns VAR: creates a fresh namespace and stores its name in VAR.
new_ns() {
    local -n _out=$1
    local name
    name=psnf-gold-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
    ip netns add "$name"
    created_ns+=("$name")
    _out=$name
}

drop_ns() {
    ip netns delete "$1" 2>/dev/null || true
}

# ------------------------------------------------------------------- helpers
# tool BACKEND FAMILY [SUFFIX]  ->  e.g. "ip6tables-legacy-restore", "iptables-nft"
tool() {
    local prefix=iptables
    [[ $2 == 6 ]] && prefix=ip6tables
    printf '%s-%s%s' "$prefix" "$1" "${3:+-$3}"
}

# load NS BACKEND FAMILY FILE...
load() {
    local ns=$1 be=$2 fam=$3 f
    shift 3
    for f in "$@"; do
        if ! ip netns exec "$ns" "$(tool "$be" "$fam" restore)" --noflush < "$f"; then
            echo "make-golden.sh: $(tool "$be" "$fam" restore) --noflush rejected $f" >&2
            exit 1
        fi
    done
}

# save NS BACKEND FAMILY OUTFILE: iptables-save -c without '#' comment lines.
save() {
    local ns=$1 be=$2 fam=$3 out=$4
    mkdir -p "$(dirname "$out")"
    ip netns exec "$ns" "$(tool "$be" "$fam" save)" -c | { grep -v '^#' || true; } > "$out.tmp"
    mv "$out.tmp" "$out"
    echo "wrote ${out#"$repo_root"/}"
}

# The snat rule of forward "web", exactly as in owned.v4.rules.
web_snat_rule=(-d 198.51.100.10/32 -p tcp -m tcp --dport 8080
    -m conntrack --ctstate DNAT --ctorigdst 203.0.113.1/32 --ctorigdstport 8080
    -m comment --comment psnf:v1:web:snat -j SNAT --to-source 198.51.100.1)

# ------------------------------------------------------------------- checks
# Every foreign fixture must load on its own into a fresh namespace.
for be in nft legacy; do
    for f in "${foreign_v4[@]}"; do
        new_ns ns; load "$ns" "$be" 4 "$f"; drop_ns "$ns"
    done
    for f in "${foreign_v6[@]}"; do
        new_ns ns; load "$ns" "$be" 6 "$f"; drop_ns "$ns"
    done
done

# ------------------------------------------------------------------- golden
status=0

# same_except FILE_A FILE_B REGEX: FILE_A must equal FILE_B minus lines matching REGEX.
same_except() {
    if ! diff -u "$1" <(grep -Ev -- "$3" "$2" || true) >&2; then
        echo "make-golden.sh: WARNING: ${2##*/} minus /$3/ differs from ${1##*/} (see diff above)" >&2
        status=1
    fi
}

for be in nft legacy; do
    out=$golden_dir/$be

    # 1. all foreign v4 rulesets, loaded one after another
    new_ns ns
    load "$ns" "$be" 4 "${foreign_v4[@]}"
    save "$ns" "$be" 4 "$out/foreign-only.v4.save"
    drop_ns "$ns"

    # 2. foreign v6
    new_ns ns
    load "$ns" "$be" 6 "${foreign_v6[@]}"
    save "$ns" "$be" 6 "$out/foreign-only.v6.save"
    drop_ns "$ns"

    # 3. + 5. foreign v4 first, then the module's own rules; then delete the
    #         snat rule of forward "web" (a partly deleted forward)
    new_ns ns
    load "$ns" "$be" 4 "${foreign_v4[@]}" "$owned_v4"
    save "$ns" "$be" 4 "$out/owned.v4.save"
    ip netns exec "$ns" "$(tool "$be" 4)" -t nat -D PSNF-POSTROUTING "${web_snat_rule[@]}"
    save "$ns" "$be" 4 "$out/owned-drift.v4.save"
    drop_ns "$ns"

    # 4. foreign v6 first, then the module's own v6 rules
    new_ns ns
    load "$ns" "$be" 6 "${foreign_v6[@]}" "$owned_v6"
    save "$ns" "$be" 6 "$out/owned.v6.save"
    drop_ns "$ns"

    # 6. the module's own v4 rules alone
    new_ns ns
    load "$ns" "$be" 4 "$owned_v4"
    save "$ns" "$be" 4 "$out/owned-only.v4.save"
    drop_ns "$ns"

    # Sanity: adding our rules must leave every foreign line exactly as it was,
    # and the drift file must be owned.v4 minus exactly the web snat rule.
    same_except "$out/foreign-only.v4.save" "$out/owned.v4.save" 'PSNF-'
    same_except "$out/foreign-only.v6.save" "$out/owned.v6.save" 'PSNF-'
    same_except "$out/owned-drift.v4.save" "$out/owned.v4.save" 'psnf:v1:web:snat"? '
done

exit "$status"
