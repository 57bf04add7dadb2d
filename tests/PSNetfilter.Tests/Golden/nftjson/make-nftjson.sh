#!/usr/bin/env bash
# Regenerates the hand-written golden dumps: each *.ruleset here is loaded into a fresh network namespace with the
# real nft and listed back with `nft -j list ruleset` (and as text). mixed.json also holds an iptables-nft table
# (filter/FORWARD policy DROP), which Test-PortForward reads through iptables-save, not through nft.
# Dumps taken from real firewall managers are made by tests/pester/gateways (see docs/GATEWAYS.md).
set -euo pipefail
cd "$(dirname "$0")"
for src in *.ruleset; do
    name=${src%.ruleset}
    ns="psnf-golden-$$-$RANDOM"
    ip netns add "$ns"
    trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
    ip netns exec "$ns" nft -f "$src"
    if [ "$name" = mixed ]; then
        ip netns exec "$ns" iptables-nft -P FORWARD DROP
        ip netns exec "$ns" iptables-nft -A FORWARD -m conntrack --ctstate DNAT -j ACCEPT
    fi
    ip netns exec "$ns" nft -j list ruleset > "$name.json"
    ip netns exec "$ns" nft list ruleset > "$name.nft"
    ip netns delete "$ns"
    trap - EXIT
done
