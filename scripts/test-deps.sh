#!/usr/bin/env bash
# Install what only the tests use (as root on Debian 12; scripts/install-deps.sh first):
# a registry server (registry 2.8) for pull/push tests, htpasswd for its basic auth,
# skopeo to read the archives moord saves, Prometheus to scrape moord's metrics, rclone
# (its `serve docker` is the Docker volume plugin the plugin tests use; fuse3 for its mounts),
# docker-compose (Debian's 1.29, a client
# only: without the docker.io it recommends), the docker CLI the integration tests
# drive, and the checkout's .venv with the development tools. Idempotent.
# scripts/test.sh runs it; so does the cgroup v2 guest (scripts/cgv2-guest.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# shellcheck source=scripts/lib/packages.sh
. scripts/lib/packages.sh
mapfile -t missing < <(missing_packages "${test_packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # Debian starts a registry on :5000 and Prometheus (with its node exporter) under
    # systemd; the tests start their own
    if [ -d /run/systemd/system ]; then
        for unit in docker-registry prometheus prometheus-node-exporter; do
            systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
        done
    fi
fi
mapfile -t missing < <(missing_packages "${test_client_only_packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The docker CLI: /usr/local/bin/docker when the machine has one (a current static
# client), else Debian's docker.io client at /usr/bin/docker (tests/support/daemon.py
# takes the first of the two and the pytest header names it). Only the client binary
# is taken from the package: installing docker.io would also install and start
# dockerd and containerd.
if [ ! -x /usr/local/bin/docker ] && [ ! -x /usr/bin/docker ]; then
    apt-get update -qq
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root docker.io)
    dpkg-deb --fsys-tarfile "$debs"/docker.io_*.deb | tar -x -C "$debs" ./usr/bin/docker
    install -m 0755 "$debs/usr/bin/docker" /usr/bin/docker
    rm -rf "$debs"
    echo "test-deps: installed Debian's docker.io client (only the client): /usr/bin/docker," \
         "$(/usr/bin/docker --version)"
fi

# the development tools (pytest, ruff, mypy) in the checkout's .venv, moorage editable
# (installed again each time: entry points follow pyproject.toml). MOORAGE_TEST_EXTRA=test
# takes only what running the tests needs (no ruff, no mypy): the cgroup v2 guest does.
extra=${MOORAGE_TEST_EXTRA:-dev}
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e ".[$extra]"
