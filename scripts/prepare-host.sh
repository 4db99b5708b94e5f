#!/usr/bin/env bash
# Make this host able to run containers with crun and overlayfs. On a hybrid cgroup host
# (v1 hierarchies plus a v2 one at /sys/fs/cgroup/unified), crun 1.8 refuses to run while
# the v2 hierarchy has controllers. Binding each such controller to a v1 hierarchy
# (as systemd does) moves it off v2. Pure v1 and pure v2 hosts need nothing there.
# A modular kernel gets the overlay module loaded now and at every boot.
# Idempotent; run as root.
set -euo pipefail

unified=/sys/fs/cgroup/unified
if [ -r "$unified/cgroup.controllers" ] && grep -qs " /sys/fs/cgroup/[^ ]* cgroup " /proc/self/mounts; then
    for controller in $(cat "$unified/cgroup.controllers"); do
        target=/sys/fs/cgroup/$controller
        if mountpoint -q "$target" 2>/dev/null; then
            continue
        fi
        mkdir -p "$target"
        if mount -t cgroup -o "$controller" cgroup "$target"; then
            echo "prepare-host: bound the $controller controller to a cgroup v1 hierarchy at $target"
        else
            echo "prepare-host: could not bind $controller to cgroup v1; crun will refuse this host" \
                 "and moord will fall back to runc (it says so in its log and in 'docker info')" >&2
        fi
    done
fi

# overlayfs: load the module now and at every boot (systemd-modules-load reads
# /etc/modules-load.d). moord also loads it at start when it is missing.
if ! grep -qw overlay /proc/filesystems; then
    modprobe overlay || echo "prepare-host: the kernel has no overlayfs (modprobe overlay failed); moord cannot run" >&2
fi
if [ -d /lib/modules/"$(uname -r)" ] && ! grep -qsx overlay /etc/modules-load.d/moorage.conf; then
    mkdir -p /etc/modules-load.d
    printf '# moorage: container root filesystems are overlayfs mounts\noverlay\n' > /etc/modules-load.d/moorage.conf
    echo "prepare-host: the overlay module is loaded at boot (/etc/modules-load.d/moorage.conf)"
fi
