#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running container (as root):
# install, prepare the host, start moord, import the built-in busybox image from
# Debian's busybox-static, and run `moor run --rm busybox echo hello`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh

socket=/run/moorage/moorage.sock
mkdir -p /var/log/moorage /run/moorage
if ! .venv/bin/moor version >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now moord.service
    else
        nohup .venv/bin/moord >>/var/log/moorage/moord.log 2>&1 &
    fi
    for _ in $(seq 1 600); do  # up to 60 s: a slow (emulated) host takes long
        [ -S "$socket" ] && .venv/bin/moor version >/dev/null 2>&1 && break
        sleep 0.1
    done
    if ! .venv/bin/moor version >/dev/null 2>&1; then
        echo "setup: moord did not start; its log says:" >&2
        tail -n 20 /var/log/moorage/moord.log >&2 || journalctl -u moord -n 20 >&2
        exit 1
    fi
    echo "setup: moord is running (log: /var/log/moorage/moord.log, socket: $socket)"
fi

if ! .venv/bin/moor image inspect busybox:latest >/dev/null 2>&1; then
    .venv/bin/python -m engine.images.busybox_rootfs - \
        | .venv/bin/moor import --change 'CMD ["sh"]' - busybox:latest
fi

.venv/bin/moor run --rm busybox echo hello
