#!/usr/bin/env bash
# What any moord on this host needs, the production install's and the tests' alike
# (as root, Debian 12): the runtime packages and the host's cgroup preparation.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
packages=(crun runc conmon busybox-static golang-github-containers-common tini catatonit
          nftables iproute2 ca-certificates python3 python3-venv
          containernetworking-plugins iptables)  # CNI networks, macvlan, ipvlan (portmap uses iptables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/prepare-host.sh
