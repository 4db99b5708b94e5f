#!/usr/bin/env bash
# Upgrade the production install in place (as root) to this checkout: a new release
# beside the old one, /opt/moorage/current switched to it in one rename, then moord
# restarted on it (systemctl restart under systemd, where moord.socket holds clients
# through the restart; otherwise SIGTERM and a new detached moord). Containers keep
# running and logging throughout and the new moord re-adopts them. moord is started if
# it was not running. `--rollback` switches back to /opt/moorage/previous instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/moord.sh
. scripts/lib/moord.sh

if [ ! -L "$MOORAGE_PREFIX/current" ]; then
    echo "upgrade: nothing installed in $MOORAGE_PREFIX; run scripts/install.sh" >&2
    exit 1
fi
before=$(readlink "$MOORAGE_PREFIX/current")

if [ "${1:-}" = "--rollback" ]; then
    previous=$(readlink "$MOORAGE_PREFIX/previous" 2>/dev/null) \
        || { echo "upgrade: no previous release to roll back to" >&2; exit 1; }
    switch_link "$previous" "$MOORAGE_PREFIX/current"
    switch_link "$before" "$MOORAGE_PREFIX/previous"
    if moord_running; then moord_restart; fi
elif [ $# -gt 0 ]; then
    echo "usage: scripts/upgrade.sh [--rollback]" >&2
    exit 2
else
    bash scripts/install.sh
fi

if ! moord_running; then
    moord_start
fi
echo "upgrade: $before → $(readlink "$MOORAGE_PREFIX/current"); moord answers on $MOORAGE_SOCKET"
