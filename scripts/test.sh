#!/usr/bin/env bash
# Run every check CI runs (as root on a Debian 12 machine): install what the tests
# need, then ruff, mypy and the tests (unit and integration, against real crun,
# conmon, overlayfs and a moord per session, driven by the docker CLI and SDK).
# The tests run from this checkout's .venv (moorage editable, with its development
# tools); that is not the production install (scripts/install.sh, /opt/moorage), which
# this neither needs nor touches.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'

# What only the tests use: a registry server (registry 2.8) for pull/push tests,
# htpasswd for its basic auth, skopeo to read the archives moord saves, Prometheus to
# scrape moord's metrics, and docker-compose (Debian's 1.29, a client only: without the
# docker.io it recommends).
test_packages=(docker-registry apache2-utils skopeo prometheus)
client_only_packages=(docker-compose)
missing=()
for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
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
missing=()
for p in "${client_only_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Docker SDK's own integration suite runs from a venv of its own, with the SDK's pins
# (tests/conformance/runner.py; the suite is ../shared/conformance, unmodified).
conformance_pins=(docker[ssh]==7.2.0 pytest==7.4.2 pytest-timeout==2.1.0)
if ! .venv-conformance/bin/python -c 'import docker, paramiko, pytest, pytest_timeout' 2>/dev/null; then
    python3 -m venv .venv-conformance
    .venv-conformance/bin/pip install -q "${conformance_pins[@]}"
fi

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest "$@"
# docker-py's suite against a private moord: any failure its expected list doesn't name
# (each with its reason) fails the run. Arguments select pytest tests only, so a run
# narrowed with arguments skips it.
if [ $# -eq 0 ]; then
    .venv/bin/python -m tests.conformance
fi
