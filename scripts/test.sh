#!/usr/bin/env bash
# Run every check CI runs (as root on a Debian 12 machine): install what the tests
# need, then ruff, mypy and the tests (unit and integration, against real crun,
# conmon, overlayfs and a moord per session, driven by the docker CLI and SDK), then
# docker-py's own integration suite.
# The tests run from this checkout's .venv (moorage editable, with its development
# tools); that is not the production install (scripts/install.sh, /opt/moorage), which
# this neither needs nor touches.
# MOORAGE_CGV2=1 also runs the cgroup v2 job (scripts/test-cgv2.sh: the tests marked
# cgroup_v2 and the restart proof under systemd, in a qemu guest); it is not part of
# the default run yet (docs/cgroup-v2.md says why).
set -euo pipefail
cd "$(dirname "$0")/.."

# what moord needs (Debian packages, the host's preparation), then what only the tests
# use (registry, skopeo, Prometheus, docker-compose, the docker CLI, the dev .venv)
bash scripts/install-deps.sh
bash scripts/test-deps.sh

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
if [ "${MOORAGE_CGV2:-0}" = 1 ] && [ $# -eq 0 ]; then
    bash scripts/test-cgv2.sh
fi
