#!/usr/bin/env bash
# Runs inside the cgroup v2 guest (scripts/test-cgv2.sh boots it): copy the shared
# checkout to /root/moorage, set up with scripts/setup.sh (the production install, moord
# under systemd) while installing what the tests use, run the restart proof
# (tests/cgv2/restart_proof.py), the upgrade proof (scripts/upgrade-proof.sh, with
# MOORAGE_CGV2_UPGRADE=1) and the uninstall, then the integration tests marked
# `cgroup_v2` (and `guest_kernel`).
# Fails when the host is not pure cgroup v2, or when the tests or the proof fail.
#
#   bash scripts/cgv2-guest.sh [SOURCE [PYTEST ARGS...]]
#       SOURCE: the shared checkout, default /mnt/src; PYTEST ARGS replace
#       `-m "cgroup_v2 or guest_kernel" tests/integration`
set -uo pipefail
src=${1:-/mnt/src}
shift || true
if [ $# -gt 0 ]; then
    pytest_args=("$@")
else
    pytest_args=(-m "cgroup_v2 or guest_kernel" tests/integration)
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

# what the host prepared (scripts/test-cgv2.sh): pip reads the wheelhouse offline, the
# production install takes the wheel built there, and the docker CLI is the host's
if [ -f /mnt/xfer/wheelhouse.tar ]; then
    rm -rf /root/wheelhouse && mkdir -p /root/wheelhouse
    tar -C /root/wheelhouse -xf /mnt/xfer/wheelhouse.tar
    export PIP_NO_INDEX=1 PIP_FIND_LINKS=/root/wheelhouse PIP_DISABLE_PIP_VERSION_CHECK=1
    # byte-compiling every installed module costs emulated minutes; Python compiles
    # what it imports, when it first imports it
    export PIP_COMPILE=0
fi
for wheel in /mnt/xfer/moorage-*.whl; do
    [ -f "$wheel" ] && export MOORAGE_WHEEL=$wheel
done
if [ -f /mnt/xfer/docker ]; then
    install -m 0755 /mnt/xfer/docker /usr/local/bin/docker
fi

# The production install (README's first command: moord under systemd, a container run),
# beside unpacking the tests' venv that the host made (at the same path, linked as .venv;
# what else scripts/test-deps.sh installs, the image and the host's docker CLI carry)
bash scripts/setup.sh >/root/setup.log 2>&1 &
setup_pid=$!
if [ -f /mnt/xfer/test-venv.tar ]; then
    venv=/$(tar -tf /mnt/xfer/test-venv.tar 2>/dev/null | head -n1 | sed 's|/*$||')
    rm -rf "$venv" .venv && tar -C / -xf /mnt/xfer/test-venv.tar && ln -s "$venv" .venv
    stamp "unpacked the tests' venv ($venv)"
else
    MOORAGE_TEST_EXTRA=test bash scripts/test-deps.sh || { echo "cgv2-guest: scripts/test-deps.sh failed" >&2; exit 1; }
    stamp "installed what the tests use"
fi
setup_rc=0; wait "$setup_pid" || setup_rc=$?
sed 's/^/  /' /root/setup.log
[ "$setup_rc" = 0 ] || { echo "cgv2-guest: scripts/setup.sh failed" >&2; exit 1; }
stamp "set up (moord: $(systemctl is-active moord.service) under systemd)"

failed=()
export PYTHONUNBUFFERED=1
.venv/bin/python -m tests.cgv2.restart_proof --restarts 2 || failed+=("the restart proof")
stamp "restart proof done"
# an in-place upgrade under systemd with containers running (scripts/upgrade.sh): a
# second release installed, minutes of emulated pip, so only when asked
if [ "${MOORAGE_CGV2_UPGRADE:-0}" = 1 ]; then
    bash scripts/upgrade-proof.sh || failed+=("the upgrade proof")
    stamp "upgrade proof done"
fi
# and the uninstall: moord and its units gone, containers and data kept
if bash scripts/uninstall.sh; then
    leftovers=()
    systemctl is-active --quiet moord.service && leftovers+=("moord.service is active")
    systemctl is-active --quiet moord.socket && leftovers+=("moord.socket is active")
    for path in /opt/moorage /usr/local/bin/moord /usr/local/bin/moor \
                /etc/systemd/system/moord.service /etc/systemd/system/moord.socket; do
        [ -e "$path" ] && leftovers+=("$path")
    done
    [ -d /var/lib/moorage ] || leftovers+=("the data root is gone")
    if [ ${#leftovers[@]} -gt 0 ]; then
        echo "cgv2-guest: uninstall left: ${leftovers[*]}" >&2
        failed+=("the uninstall")
    else
        echo "cgv2-guest: uninstalled: moord stopped, /opt/moorage, the links and the units" \
             "removed; /var/lib/moorage kept"
    fi
else
    failed+=("the uninstall")
fi
stamp "uninstall done"

# the guest is emulated (and, in CI, shares the host with its tests): the harness's
# waits for moord and the docker CLI stretch (tests/support/daemon.py)
export MOORAGE_TEST_SLOWNESS=${MOORAGE_TEST_SLOWNESS:-6}
.venv/bin/pytest -p no:cacheprovider --durations=40 "${pytest_args[@]}" || failed+=("pytest ${pytest_args[*]}")
stamp "pytest ${pytest_args[*]} done"

if [ ${#failed[@]} -gt 0 ]; then
    echo "cgv2-guest: FAILED: ${failed[*]}" >&2
    echo "--- moord's journal (warnings and errors)"
    journalctl -u moord --no-pager -o cat | grep -i -E 'warn|error|traceback|fail' | tail -40
    exit 1
fi
echo "cgv2-guest: all passed"
