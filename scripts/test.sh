#!/usr/bin/env bash
# Run every check CI runs (as root on a Debian 12 machine): install what the tests
# need, then ruff, mypy and the tests (unit and integration, against real crun,
# conmon, overlayfs and a moord per session, driven by the docker CLI and SDK), then
# docker-py's own integration suite.
# The tests run from this checkout's .venv (moorage editable, with its development
# tools); that is not the production install (scripts/install.sh, /opt/moorage), which
# this neither needs nor touches.
# Beside them, the cgroup v2 job (scripts/test-cgv2.sh): in a fresh qemu guest with
# systemd and the unified hierarchy, the production install, the restart proof under
# systemd, the uninstall, and the integration tests marked cgroup_v2 (and guest_kernel).
# MOORAGE_CGV2=0 leaves the job out (it says so); a run narrowed with arguments does too.
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

cgv2=${MOORAGE_CGV2:-1}
[ $# -gt 0 ] && cgv2=0
cgv2_pid=
cgv2_log=$(mktemp)
if [ "$cgv2" = 1 ]; then
    # beside the host's checks, at the lowest priority: the guest takes the CPU they
    # leave idle. A session of its own, so that stopping it stops qemu too.
    setsid nice -n 19 bash scripts/test-cgv2.sh --fresh >"$cgv2_log" 2>&1 &
    cgv2_pid=$!
fi
stop_cgv2() {
    if [ -n "$cgv2_pid" ]; then kill -- "-$cgv2_pid" 2>/dev/null || true; fi
    rm -f "$cgv2_log"
}
trap stop_cgv2 EXIT

.venv/bin/ruff check .
.venv/bin/mypy
if [ $# -gt 0 ]; then
    .venv/bin/pytest "$@"
else
    # the tests marked guest_kernel need what this host's kernel may lack (ipvlan): the
    # cgroup v2 job runs them in its guest
    .venv/bin/pytest -m "not guest_kernel"
fi
# docker-py's suite against a private moord: any failure its expected list doesn't name
# (each with its reason) fails the run. Arguments select pytest tests only, so a run
# narrowed with arguments skips it.
if [ $# -eq 0 ]; then
    .venv/bin/python -m tests.conformance
fi
if [ "$cgv2" = 1 ]; then
    echo "test: the host's checks passed; waiting for the cgroup v2 job"
    cgv2_status=0
    wait "$cgv2_pid" || cgv2_status=$?
    cgv2_pid=
    grep -v -e '^I: ' -e 'is ignored: it is neither' "$cgv2_log"
    [ "$cgv2_status" = 0 ] || { echo "test: the cgroup v2 job failed (status $cgv2_status)" >&2; exit 1; }
else
    echo "test: the cgroup v2 job did not run (MOORAGE_CGV2=0 or a narrowed run)"
fi
