#!/usr/bin/env bash
# The production install on a Debian 12 machine (as root), outside this checkout:
# - the runtime packages (scripts/install-deps.sh) and the host's cgroup preparation;
# - a new release of moorage built from this checkout's wheel, in its own venv under
#   /opt/moorage/releases, switched to atomically through /opt/moorage/current
#   (scripts/install-release.sh): no development tools;
# - /usr/local/bin/moord and /usr/local/bin/moor linked to /opt/moorage/current/bin;
# - every unit in contrib/systemd into /etc/systemd/system (scripts/setup.sh enables
#   them), and the example configuration into /etc/moorage when the checkout has one.
# Run again, it is the upgrade: a moord that runs is restarted on the new release, and
# its containers keep running (docs/install.md). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/moord.sh
. scripts/lib/moord.sh

bash scripts/install-deps.sh

was_running=0
if moord_running; then
    was_running=1
fi

release=$(bash scripts/install-release.sh "$MOORAGE_PREFIX")
ln -sfn "$MOORAGE_PREFIX/current/bin/moord" "$MOORAGE_MOORD"
ln -sfn "$MOORAGE_PREFIX/current/bin/moor" "$MOORAGE_MOOR"

# The units, for hosts run by systemd; what was installed is recorded for uninstall.sh.
if [ -d /etc/systemd/system ]; then
    : >"$MOORAGE_PREFIX/units"
    for unit in contrib/systemd/*; do
        [ -f "$unit" ] || continue
        install -m 0644 "$unit" "/etc/systemd/system/$(basename "$unit")"
        basename "$unit" >>"$MOORAGE_PREFIX/units"
    done
    if under_systemd; then
        systemctl daemon-reload
    fi
fi
if [ -f contrib/daemon.toml.example ]; then
    install -d -m 0755 /etc/moorage
    install -m 0644 contrib/daemon.toml.example /etc/moorage/daemon.toml.example
fi

echo "install: moorage $(sed -n 's/^release=//p' "$release/moorage-release") in $release" \
     "(moord and moor in /usr/local/bin)"
if [ "$was_running" = 1 ]; then
    moord_restart
    echo "install: moord restarted on the new release; containers kept running"
fi
