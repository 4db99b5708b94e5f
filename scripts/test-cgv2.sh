#!/usr/bin/env bash
# The cgroup v2 job: boot a throw-away Debian 12 guest with systemd and the unified
# cgroup hierarchy under qemu, share this checkout with it read-only, and run
# scripts/cgv2-guest.sh there: set-up under systemd, the restart proof (restarting moord
# under systemd loses no log line and no request to a published port), and the
# integration tests marked `cgroup_v2`. The guest's output streams here; the exit status
# is the guest's. As root on Debian 12, from a fresh clone.
#
# The guest is emulated (qemu's TCG here, about 6x slower than the host), so everything
# that need not run emulated is done here, natively, and cached in $CGV2_DIR
# (default /var/tmp/moorage-cgv2):
# - the guest's image carries every Debian package moorage's scripts install
#   (scripts/lib/packages.sh); it is rebuilt when that list changes;
# - the Python wheels that set-up installs are downloaded here into a wheelhouse that
#   the guest's pip reads offline, moorage's wheel is built here, and so is the tests'
#   venv (the guest unpacks it at the same path);
# - the docker CLI the tests drive is this host's (/usr/local/bin/docker, or /usr/bin/docker).
#
#   bash scripts/test-cgv2.sh [cgv2-vm.sh run options, e.g. --fresh]
#   bash scripts/test-cgv2.sh --prepare   (only the native part: tools, image, wheelhouse;
#                                          scripts/test.sh runs it beside the host's tests)
#   MOORAGE_CGV2_PYTEST='tests/integration/test_update.py' bash scripts/test-cgv2.sh
#       (other tests than the marked subset, as pytest arguments)
#   MOORAGE_CGV2_UPGRADE=1 bash scripts/test-cgv2.sh
#       (also the upgrade proof under systemd: a second release installed in the guest,
#       about 8 minutes there, so not in CI's run)
#
# The guest machinery is ../shared/tools/cgv2-vm.sh (or $MOORAGE_CGV2_VM); its README
# gives the costs.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
prepare_only=0
if [ "${1:-}" = --prepare ]; then
    prepare_only=1
    shift
fi

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
# shellcheck source=scripts/lib/packages.sh
. scripts/lib/packages.sh
mapfile -t missing < <(missing_packages "${host_tools[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export CGV2_DIR=${CGV2_DIR:-/var/tmp/moorage-cgv2}
mkdir -p "$CGV2_DIR"

# The image: rebuilt when the packages it must carry change.
image_packages="${runtime_packages[*]} ${test_packages[*]} ${test_client_only_packages[*]}"
if [ ! -f "$CGV2_DIR/base.img" ] || [ "$(cat "$CGV2_DIR/image-packages" 2>/dev/null)" != "$image_packages" ]; then
    echo "test-cgv2: building the guest image in $CGV2_DIR (with $image_packages)"
    rm -f "$CGV2_DIR/image-packages"
    CGV2_EXTRA_PACKAGES="$image_packages" bash "$vm" build
    printf '%s' "$image_packages" >"$CGV2_DIR/image-packages"
fi
imaged=$SECONDS

# The wheelhouse: pip, the build backend, and moorage's runtime and test dependencies
# (not the linters, which CI runs on the host), as one file for the exchange folder.
wheelhouse=$CGV2_DIR/wheelhouse
mkdir -p "$wheelhouse"
# Debian's python3, the guest's interpreter (not whatever python3 comes first on PATH)
python=/usr/bin/python3
[ -x "$CGV2_DIR/pip-env/bin/pip" ] || "$python" -m venv --clear "$CGV2_DIR/pip-env"
"$CGV2_DIR/pip-env/bin/pip" download -q --disable-pip-version-check -d "$wheelhouse" \
    pip 'setuptools>=77' wheel ".[test]" 2> >(grep -v "is ignored: it is neither" >&2)
tar -C "$wheelhouse" -cf "$CGV2_DIR/wheelhouse.tar" .
# moorage's own wheel, built from a copy of this checkout (as scripts/install-release.sh
# builds it); the guest's production install takes it (MOORAGE_WHEEL)
# shellcheck source=scripts/lib/wheel.sh
. scripts/lib/wheel.sh
rm -rf "$CGV2_DIR/dist"
wheel=$(build_wheel . "$CGV2_DIR/pip-env/bin/pip" "$CGV2_DIR/dist")
# The tests' venv: moorage's wheel with the [test] extra, made here natively at the path
# where the guest unpacks it (the same absolute path: a venv is not relocatable), so the
# guest's pytest runs from it without installing anything
test_venv=$CGV2_DIR/test-venv
rm -rf "$test_venv"
"$python" -m venv --without-pip "$test_venv"
"$CGV2_DIR/pip-env/bin/pip" --python "$test_venv/bin/python" install -q --disable-pip-version-check \
    --no-index --find-links "$wheelhouse" pip "$wheel[test]"
tar -C / -cf "$CGV2_DIR/test-venv.tar" "${test_venv#/}"
docker_cli=""
for candidate in /usr/local/bin/docker /usr/bin/docker; do
    if [ -x "$candidate" ]; then docker_cli=$candidate; break; fi
done
puts=(--put "$CGV2_DIR/wheelhouse.tar" --put "$CGV2_DIR/test-venv.tar")
puts+=(--put "$wheel")
[ -n "$docker_cli" ] && puts+=(--put "$docker_cli")
prepared=$SECONDS
if [ "$prepare_only" = 1 ]; then
    echo "test-cgv2: prepared in $CGV2_DIR (image $((imaged - t0))s, wheelhouse $((prepared - imaged))s)"
    exit 0
fi

echo "test-cgv2: booting the guest (image $((imaged - t0))s, wheelhouse and the rest" \
     "$((prepared - imaged))s)"
status=0
bash "$vm" run --share . --timeout "${MOORAGE_CGV2_TIMEOUT:-2700}" "${puts[@]}" "$@" -- \
    "install -m 0755 /mnt/src/scripts/cgv2-guest.sh /root/cgv2-guest.sh &&
     MOORAGE_CGV2_UPGRADE=${MOORAGE_CGV2_UPGRADE:-0} bash /root/cgv2-guest.sh /mnt/src ${MOORAGE_CGV2_PYTEST:-}" \
    || status=$?
echo "test-cgv2: the cgroup v2 job took $((SECONDS - t0))s (image $((imaged - t0))s," \
     "wheelhouse $((prepared - imaged))s, guest $((SECONDS - prepared))s); exit status $status"
exit "$status"
