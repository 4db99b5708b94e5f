#!/usr/bin/env bash
# What any moord on this host needs, the production install's and the tests' alike
# (as root, Debian 12): the runtime packages and the host's cgroup preparation.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
# shellcheck source=scripts/lib/packages.sh
. scripts/lib/packages.sh
mapfile -t missing < <(missing_packages "${runtime_packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/prepare-host.sh
