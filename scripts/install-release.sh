#!/usr/bin/env bash
# Build moorage's wheel from this checkout and install it as a new release under PREFIX
# (default /opt/moorage): a venv of its own at PREFIX/releases/<version>-<time>, with
# moorage and its runtime dependencies only (no [dev] extra). Then switch
# PREFIX/current to it in one rename, so `PREFIX/current/bin/moord` is always a whole
# release, and keep the one it replaces as PREFIX/previous (for a rollback); older
# releases are removed unless a process still runs from one. A running moord keeps the files it started from until it is
# restarted. Prints the new release's path last. Needs python3-venv; reaches the
# package index for the build backend and the dependencies. MOORAGE_WHEEL=FILE installs
# that wheel (built from this checkout) instead of building one.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/moord.sh
. "$src/scripts/lib/moord.sh"
prefix=${1:-${MOORAGE_PREFIX:-/opt/moorage}}
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "${MOORAGE_WHEEL:-}" ]; then
    # a wheel already built from this checkout (the cgroup v2 job builds it on the host,
    # where it takes seconds, not the emulated guest's minutes)
    [ -f "$MOORAGE_WHEEL" ] || { echo "install-release: no wheel at $MOORAGE_WHEEL" >&2; exit 1; }
    wheel=$MOORAGE_WHEEL
else
    # shellcheck source=scripts/lib/wheel.sh
    . "$src/scripts/lib/wheel.sh"
    "$python" -m venv "$work/build-env"
    wheel=$(build_wheel "$src" "$work/build-env/bin/pip" "$work/wheel")
fi
version=$(basename "$wheel" | cut -d- -f2)

mkdir -p "$prefix/releases"
release_id="$version-$(date -u +%Y%m%dT%H%M%SZ)"
n=1
while [ -e "$prefix/releases/$release_id" ]; do   # two installs within one second
    n=$((n + 1))
    release_id="$version-$(date -u +%Y%m%dT%H%M%SZ)-$n"
done
release="$prefix/releases/$release_id"
"$python" -m venv "$release"
if ! "$release/bin/pip" install -q "$wheel" >&2; then
    rm -rf "$release"
    echo "install-release: installing $wheel into $release failed; $prefix/current is unchanged" >&2
    exit 1
fi
# A production release carries no development tools (they come only with the [dev] extra).
dev_tools=$("$release/bin/python" -c '
import importlib.util
print(" ".join(m for m in ("pytest", "mypy", "ruff", "docker", "hypothesis")
               if importlib.util.find_spec(m) is not None))')
if [ -n "$dev_tools" ]; then
    rm -rf "$release"
    echo "install-release: the release would carry development tools ($dev_tools); not switching" >&2
    exit 1
fi
if ! "$release/bin/moord" --help >/dev/null || ! "$release/bin/moor" --help >/dev/null; then
    rm -rf "$release"
    echo "install-release: moord or moor of the new release does not run; not switching" >&2
    exit 1
fi
{
    echo "release=$release_id"
    echo "version=$version"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "source=$src"
    if commit=$(git -C "$src" rev-parse HEAD 2>/dev/null); then
        echo "commit=$commit"
    fi
} >"$release/moorage-release"

old=$(readlink "$prefix/current" 2>/dev/null || true)
switch_link "releases/$release_id" "$prefix/current"
if [ -n "$old" ] && [ "$old" != "releases/$release_id" ]; then
    switch_link "$old" "$prefix/previous"
fi
previous=$(readlink "$prefix/previous" 2>/dev/null || true)
for dir in "$prefix"/releases/*; do
    name="releases/$(basename "$dir")"
    [ "$name" = "releases/$release_id" ] || [ "$name" = "$previous" ] && continue
    # nor one that a process still runs from (a moord not yet restarted)
    grep -qsF "$dir/" /proc/[0-9]*/cmdline && continue
    rm -rf "$dir"
done
echo "$release"
