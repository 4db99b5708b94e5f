#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running container (as root): the
# production install (scripts/install.sh: /opt/moorage, no development tools), moord
# started (its systemd units enabled if systemd runs, else detached under nohup),
# the built-in busybox image imported from Debian's busybox-static, and
# `moor run --rm busybox echo hello`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/moord.sh
. scripts/lib/moord.sh

bash scripts/install.sh

if under_systemd; then
    mapfile -t units < <(grep -E '\.(service|socket)$' "$MOORAGE_PREFIX/units")
    systemctl enable "${units[@]}" >/dev/null
fi
if ! moord_answers; then
    moord_start
    if under_systemd; then
        echo "setup: moord is running (journalctl -u moord; socket: $MOORAGE_SOCKET)"
    else
        echo "setup: moord is running (log: $MOORAGE_LOG, socket: $MOORAGE_SOCKET)"
    fi
fi

moor() { "$MOORAGE_MOOR" -H "unix://$MOORAGE_SOCKET" "$@"; }
if ! moor image inspect busybox:latest >/dev/null 2>&1; then
    "$MOORAGE_PREFIX/current/bin/python" -m engine.images.busybox_rootfs - \
        | moor import --change 'CMD ["sh"]' - busybox:latest
fi

moor run --rm busybox echo hello
