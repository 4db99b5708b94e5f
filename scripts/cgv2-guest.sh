#!/usr/bin/env bash
# Runs inside the cgroup v2 guest (scripts/test-cgv2.sh boots it): copy the shared
# checkout to /root/moorage (the guest's .venv from an earlier run stays), set up
# with scripts/setup.sh (moord under systemd), install what the tests use, run the
# restart proof (tests/cgv2/restart_proof.py), then the integration tests marked `cgroup_v2`.
# Fails when the host is not pure cgroup v2, or when the tests or the proof fail.
#
#   bash scripts/cgv2-guest.sh [SOURCE [PYTEST ARGS...]]
#       SOURCE: the shared checkout, default /mnt/src; PYTEST ARGS replace
#       `-m cgroup_v2 tests/integration`
set -uo pipefail
src=${1:-/mnt/src}
shift || true
if [ $# -gt 0 ]; then
    pytest_args=("$@")
else
    pytest_args=(-m cgroup_v2 tests/integration)
fi
work=/root/moorage
stamp() { echo "cgv2-guest: $* (at ${SECONDS}s)"; }

if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    echo "cgv2-guest: /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup), not a pure cgroup v2 host" >&2
    exit 1
fi
echo "cgv2-guest: $(uname -r), $(systemctl --version | head -1), cgroup v2 controllers:" \
     "$(cat /sys/fs/cgroup/cgroup.controllers)"
overlay=$(grep -qw overlay /proc/filesystems && echo loaded || echo "not loaded")
persisted=$(grep -qsx overlay /etc/modules-load.d/moorage.conf && echo "listed in" || echo "not in")
echo "cgv2-guest: the overlay module is $overlay ($persisted /etc/modules-load.d/moorage.conf);" \
     "moord (from an earlier run) is $(systemctl is-active moord.service 2>/dev/null)"
journalctl -b -u moord.service --no-pager -o cat 2>/dev/null | grep -i "overlay" | sed 's/^/  moord: /'

# an earlier run's moord (enabled, so started at boot) runs the old code: stop it
# before the copy; set-up starts it again (containers are not touched)
systemctl stop moord.service 2>/dev/null || true
mkdir -p "$work"
tar -C "$src" --exclude=./.git --exclude='./.venv*' --exclude=./.mypy_cache --exclude=./.pytest_cache \
    --exclude=./.ruff_cache --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$work" -xf - \
    || { echo "cgv2-guest: copying the checkout failed" >&2; exit 1; }
cd "$work"
stamp "copied the checkout"

# what the host prepared (scripts/test-cgv2.sh): pip reads the wheelhouse offline, and
# the docker CLI is the host's
if [ -f /mnt/xfer/wheelhouse.tar ]; then
    rm -rf /root/wheelhouse && mkdir -p /root/wheelhouse
    tar -C /root/wheelhouse -xf /mnt/xfer/wheelhouse.tar
    export PIP_NO_INDEX=1 PIP_FIND_LINKS=/root/wheelhouse PIP_DISABLE_PIP_VERSION_CHECK=1
fi
if [ -f /mnt/xfer/docker ]; then
    install -m 0755 /mnt/xfer/docker /usr/local/bin/docker
fi

bash scripts/setup.sh || { echo "cgv2-guest: scripts/setup.sh failed" >&2; exit 1; }
stamp "set up (moord: $(systemctl is-active moord.service) under systemd)"
MOORAGE_TEST_EXTRA=test bash scripts/test-deps.sh || { echo "cgv2-guest: scripts/test-deps.sh failed" >&2; exit 1; }
stamp "installed what the tests use"

failed=()
export PYTHONUNBUFFERED=1
.venv/bin/python -m tests.cgv2.restart_proof || failed+=("the restart proof")
stamp "restart proof done"
.venv/bin/pytest -p no:cacheprovider --durations=40 "${pytest_args[@]}" || failed+=("pytest ${pytest_args[*]}")
stamp "pytest ${pytest_args[*]} done"

if [ ${#failed[@]} -gt 0 ]; then
    echo "cgv2-guest: FAILED: ${failed[*]}" >&2
    echo "--- moord's journal (warnings and errors)"
    journalctl -u moord --no-pager -o cat | grep -i -E 'warn|error|traceback|fail' | tail -40
    exit 1
fi
echo "cgv2-guest: all passed"
