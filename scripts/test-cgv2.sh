#!/usr/bin/env bash
# The cgroup v2 job: boot a throw-away Debian 12 guest with systemd and the unified
# cgroup hierarchy under qemu, share this checkout with it read-only, and run
# scripts/cgv2-guest.sh there: set-up under systemd, the integration tests marked
# `cgroup_v2`, and the proof that restarting moord under systemd loses no log line and
# no request to a published port. The guest's output streams here; the exit status is
# the guest's. As root on Debian 12, from a fresh clone: installs qemu and the image
# tools when missing, builds the guest image once per $CGV2_DIR (default /tmp/cgv2).
#
#   bash scripts/test-cgv2.sh [cgv2-vm.sh run options, e.g. --fresh]
#
# The guest machinery is ../shared/tools/cgv2-vm.sh (or $MOORAGE_CGV2_VM); its README
# gives the costs: qemu's TCG emulation here, about 6x slower than the host.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS

vm=""
for candidate in "${MOORAGE_CGV2_VM:-}" ../shared/tools/cgv2-vm.sh /work/shared/tools/cgv2-vm.sh; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then
        vm=$(realpath "$candidate")
        break
    fi
done
if [ -z "$vm" ]; then
    echo "test-cgv2: cgv2-vm.sh is not found (looked for \$MOORAGE_CGV2_VM," \
         "../shared/tools/cgv2-vm.sh, /work/shared/tools/cgv2-vm.sh)" >&2
    exit 1
fi

# what cgv2-vm.sh runs on the host (it installs them too, but without refreshing apt's
# lists, which a bare machine lacks)
host_tools=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs)
missing=()
for p in "${host_tools[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export CGV2_DIR=${CGV2_DIR:-/tmp/cgv2}
if [ ! -f "$CGV2_DIR/base.img" ]; then
    echo "test-cgv2: building the guest image in $CGV2_DIR"
    bash "$vm" build
fi
built=$SECONDS
echo "test-cgv2: booting the guest ($((built - t0))s so far)"
status=0
bash "$vm" run --share . --timeout "${MOORAGE_CGV2_TIMEOUT:-2700}" "$@" -- \
    'bash /mnt/src/scripts/cgv2-guest.sh /mnt/src' || status=$?
echo "test-cgv2: the cgroup v2 job took $((SECONDS - t0))s (image $((built - t0))s," \
     "guest $((SECONDS - built))s); exit status $status"
exit "$status"
