#!/usr/bin/env bash
# Install what moorage needs on a fresh Debian 12 machine (as root): the runtime
# packages, a virtualenv with moorage and its development tools, and the host's
# cgroup preparation. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
packages=(crun runc conmon busybox-static golang-github-containers-common tini catatonit
          nftables iproute2 ca-certificates python3 python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'
ln -sf "$PWD/.venv/bin/moor" /usr/local/bin/moor
ln -sf "$PWD/.venv/bin/moord" /usr/local/bin/moord

bash scripts/prepare-host.sh

# the service unit, for hosts run by systemd (scripts/setup.sh enables it there)
if [ -d /etc/systemd/system ]; then
    install -m 0644 contrib/systemd/moord.service /etc/systemd/system/moord.service
fi
