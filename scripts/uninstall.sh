#!/usr/bin/env bash
# Remove the production install (as root): stop moord and its units, remove
# /opt/moorage, the /usr/local/bin links and the units. Containers, images, volumes
# (/var/lib/moorage), logs (/var/log/moorage) and configuration (/etc/moorage) stay,
# and the containers keep running: a later install re-adopts them.
# `--purge` first removes every container (stopping it) and then also deletes the data,
# the logs, the configuration and what moord made on the host (bridges, nftables table).
# Debian's packages (scripts/install-deps.sh) stay.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/moord.sh
. scripts/lib/moord.sh

purge=0
case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    *) echo "usage: scripts/uninstall.sh [--purge]" >&2; exit 2 ;;
esac

python="$MOORAGE_PREFIX/current/bin/python"
if [ "$purge" = 1 ] && ! moord_answers && [ -x "$MOORAGE_MOORD" ]; then
    moord_start   # its containers can only be removed through it
fi
if [ "$purge" = 1 ] && moord_answers; then
    ids=$("$MOORAGE_MOOR" -H "unix://$MOORAGE_SOCKET" ps -aq)
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086 # one id per word
        "$MOORAGE_MOOR" -H "unix://$MOORAGE_SOCKET" rm -f $ids >/dev/null
        echo "uninstall: removed $(echo "$ids" | wc -w) container(s)"
    fi
fi

units=()
if [ -f "$MOORAGE_PREFIX/units" ]; then
    mapfile -t units <"$MOORAGE_PREFIX/units"
elif [ -f /etc/systemd/system/moord.service ]; then
    units=(moord.service)
fi
if under_systemd && [ ${#units[@]} -gt 0 ]; then
    systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
fi
moord_stop

if [ "$purge" = 1 ] && [ -x "$python" ]; then
    "$python" -m engine.networks.cleanup moorage /run/moorage || true
fi

for unit in "${units[@]}"; do
    rm -f "/etc/systemd/system/$unit"
done
if under_systemd; then
    systemctl daemon-reload
fi
for link in "$MOORAGE_MOOR" "$MOORAGE_MOORD"; do
    if [ -L "$link" ] && [[ "$(readlink "$link")" == "$MOORAGE_PREFIX/"* ]]; then
        rm -f "$link"
    fi
done
rm -rf "$MOORAGE_PREFIX"

if [ "$purge" = 1 ]; then
    if grep -qsE ' (/var/lib/moorage|/run/moorage)[/ ]' /proc/self/mounts; then
        echo "uninstall: something is still mounted under /var/lib/moorage or /run/moorage" \
             "(a container moord could not remove?); not deleting the data:" >&2
        grep -E ' (/var/lib/moorage|/run/moorage)[/ ]' /proc/self/mounts >&2
        exit 1
    fi
    rm -rf /var/lib/moorage /var/log/moorage /etc/moorage /run/moorage
    echo "uninstall: moorage removed with its data, logs and configuration"
else
    echo "uninstall: moorage removed; kept /var/lib/moorage, /var/log/moorage and /etc/moorage" \
         "(scripts/uninstall.sh --purge removes them)"
fi
