#!/usr/bin/env bash
# Prove an in-place upgrade of the production install loses nothing (as root, after
# scripts/setup.sh): with one container writing numbered log lines and another serving
# HTTP on a published loopback port that a client asks every 50 ms, run
# scripts/upgrade.sh (new release, moord restarted), then check that
# - moord's pid changed and /opt/moorage/current moved to a new release;
# - both containers kept their pids (they were never restarted);
# - the log, read back through the new moord, has every line 1..N exactly once;
# - every request the client made while the upgrade ran was answered.
# Prints the figures; exits non-zero if any check fails. Removes its containers.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/moord.sh
. scripts/lib/moord.sh

moor() { "$MOORAGE_MOOR" -H "unix://$MOORAGE_SOCKET" "$@"; }
logger=upgrade-proof-logger
web=upgrade-proof-web
work=$(mktemp -d)
client_pid=
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null
    moor rm -f "$logger" "$web" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

moord_answers || { echo "upgrade-proof: moord does not answer; run scripts/setup.sh" >&2; exit 1; }
moor rm -f "$logger" "$web" >/dev/null 2>&1 || true
moor run -d --name "$logger" busybox sh -c \
    'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.02; done' >/dev/null
moor run -d --name "$web" -p 127.0.0.1::8080 busybox sh -c \
    'mkdir -p /www && echo answered >/www/index.html && exec httpd -f -p 8080 -h /www' >/dev/null
port=$(moor port "$web" 8080 | head -n1 | sed 's/.*://')
pids_before="$(moor inspect -f '{{.State.Pid}}' "$logger") $(moor inspect -f '{{.State.Pid}}' "$web")"

# The client: one request per 50 ms, each with a 1 s timeout, one line per request.
python3 - "$port" "$work/stop" >"$work/client" <<'EOF' &
import sys, time, urllib.request
port, stop = sys.argv[1], sys.argv[2]
import os
while not os.path.exists(stop):
    t = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            ok = r.read().strip() == b"answered"
    except OSError:
        ok = False
    print(f"{t:.3f} {'ok' if ok else 'FAIL'}", flush=True)
    time.sleep(0.05)
EOF
client_pid=$!
for _ in $(seq 1 100); do grep -q ok "$work/client" 2>/dev/null && break; sleep 0.1; done
grep -q ok "$work/client" || { echo "upgrade-proof: the published port never answered" >&2; exit 1; }
sleep 2

moord_before=$(moord_pid || systemctl show -p MainPID --value moord.service)
release_before=$(readlink "$MOORAGE_PREFIX/current")
started=$(date +%s.%N)
bash scripts/upgrade.sh
upgrade_seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
moord_after=$(moord_pid || systemctl show -p MainPID --value moord.service)
release_after=$(readlink "$MOORAGE_PREFIX/current")
sleep 2
touch "$work/stop"
wait "$client_pid" || true
client_pid=
pids_after="$(moor inspect -f '{{.State.Pid}}' "$logger") $(moor inspect -f '{{.State.Pid}}' "$web")"
moor stop -t 1 "$logger" >/dev/null
moor logs "$logger" >"$work/log" 2>&1

requests=$(wc -l <"$work/client")
failed=$(grep -c FAIL "$work/client" || true)
longest_gap=$(awk '$2 == "ok" { if (last != "" && $1 - last > gap) gap = $1 - last; last = $1 }
                   END { printf "%.3f", gap }' "$work/client")
lines=$(grep -c '^line [0-9]*$' "$work/log" || true)
last=$(sed -n 's/^line \([0-9]*\)$/\1/p' "$work/log" | tail -n1)
missing=$(sed -n 's/^line \([0-9]*\)$/\1/p' "$work/log" \
          | awk -v last="${last:-0}" '{ seen[$1] = 1 }
                                      END { m = 0; for (i = 1; i <= last; i++) if (!(i in seen)) m++; print m }')
duplicates=$(sed -n 's/^line \([0-9]*\)$/\1/p' "$work/log" | sort -n | uniq -d | wc -l)

echo "upgrade-proof: upgrade took ${upgrade_seconds}s: release $release_before → $release_after," \
     "moord pid $moord_before → $moord_after"
echo "upgrade-proof: container pids before: $pids_before; after: $pids_after"
echo "upgrade-proof: log lines: $lines (1..$last), missing: $missing, duplicated: $duplicates"
echo "upgrade-proof: requests: $requests, failed: $failed, longest gap between answers: ${longest_gap}s"

status=0
[ "$release_before" != "$release_after" ] || { echo "FAIL: current did not move" >&2; status=1; }
[ "$moord_before" != "$moord_after" ] || { echo "FAIL: moord was not restarted" >&2; status=1; }
[ "$pids_before" = "$pids_after" ] || { echo "FAIL: a container was restarted" >&2; status=1; }
[ "$missing" = 0 ] && [ "$duplicates" = 0 ] && [ "$lines" = "$last" ] \
    || { echo "FAIL: log lines were lost or repeated" >&2; status=1; }
[ "$failed" = 0 ] || { echo "FAIL: the published port did not answer throughout" >&2; status=1; }
exit "$status"
