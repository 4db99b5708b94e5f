#!/usr/bin/env bash
# Run every check CI runs (as root on a Debian 12 machine): install what the tests
# need, then ruff, mypy and the tests (unit and integration, against real crun,
# conmon, overlayfs and a moord per session, driven by the docker CLI and SDK).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

# What only the tests use: a registry server (registry 2.8) for pull/push tests,
# htpasswd for its basic auth, skopeo to read the archives moord saves, and
# docker-compose (Debian's 1.29, a client only: without the docker.io it recommends).
test_packages=(docker-registry apache2-utils skopeo)
client_only_packages=(docker-compose)
missing=()
for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian starts a registry on :5000 under systemd; the tests start their own
    if [ -d /run/systemd/system ]; then
        systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    fi
fi
missing=()
for p in "${client_only_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
