#!/usr/bin/env bash
# Run every check CI runs (as root on a Debian 12 machine): install what the tests
# need, then ruff, mypy and the tests (unit and integration, against real crun,
# conmon, overlayfs and a moord per session, driven by the docker CLI and SDK),
# docker-py's conformance suite, and the cgroup v2 job in a qemu guest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

# what only the tests use (registry, skopeo, docker-compose, the docker CLI, dev tools)
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
# The cgroup v2 job: the integration tests marked cgroup_v2 and the restart proof under
# systemd, inside a pure cgroup v2 Debian 12 guest under qemu (scripts/test-cgv2.sh).
# Like the conformance run, a run narrowed with arguments skips it.
if [ $# -eq 0 ]; then
    bash scripts/test-cgv2.sh
fi
