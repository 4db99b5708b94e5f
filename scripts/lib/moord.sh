# Starting, stopping and restarting the host's moord, sourced by the install, upgrade,
# uninstall and setup scripts. Under systemd the units do it; without systemd (a
# container host booted without it, this project's development machines) moord runs
# detached under nohup and is found through its pidfile. Containers run under their own
# conmon, so none of this touches them: a restarted moord re-adopts them.

MOORAGE_PREFIX=${MOORAGE_PREFIX:-/opt/moorage}
MOORAGE_SOCKET=/run/moorage/moorage.sock
MOORAGE_PIDFILE=/run/moorage/moord.pid
MOORAGE_LOG=/var/log/moorage/moord.log
# what moord prints before its own logging starts (a crash at start-up): a file apart,
# because moord rotates moord.log and a shell's redirection would follow the rotated file
MOORAGE_STDERR=/var/log/moorage/moord.stderr
MOORAGE_MOOR=/usr/local/bin/moor
MOORAGE_MOORD=/usr/local/bin/moord

# Point LINK at TARGET in one rename: a reader sees the old target or the new, never none.
switch_link() {
    ln -sfn "$1" "$2.new"
    mv -T "$2.new" "$2"
}

under_systemd() {
    [ -d /run/systemd/system ]
}

# The pid of the host's moord started without systemd (from its pidfile), if it runs.
moord_pid() {
    local pid
    pid=$(cat "$MOORAGE_PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 'moord|engine\.daemon' || return 1
    echo "$pid"
}

moord_answers() {
    "$MOORAGE_MOOR" -H "unix://$MOORAGE_SOCKET" version >/dev/null 2>&1
}

moord_running() {
    if under_systemd; then
        systemctl is-active --quiet moord.service
    else
        moord_pid >/dev/null
    fi
}

moord_wait_ready() {
    local _
    for _ in $(seq 1 600); do
        moord_answers && return 0
        sleep 0.1
    done
    echo "moord did not answer on $MOORAGE_SOCKET within 60 s; its log says:" >&2
    if under_systemd; then
        journalctl -u moord.service -n 20 --no-pager >&2 || true
    else
        tail -n 20 "$MOORAGE_LOG" >&2 || true
        tail -n 20 "$MOORAGE_STDERR" >&2 2>/dev/null || true
    fi
    return 1
}

moord_start() {
    mkdir -p /run/moorage "$(dirname "$MOORAGE_LOG")"
    if under_systemd; then
        systemctl daemon-reload
        if [ -f /etc/systemd/system/moord.socket ]; then
            systemctl start moord.socket
        fi
        systemctl start moord.service
    else
        # setsid: moord must not share the caller's process group or terminal
        setsid nohup "$MOORAGE_MOORD" >>"$MOORAGE_STDERR" 2>&1 </dev/null &
    fi
    moord_wait_ready
}

# Stops moord (not its containers). Without systemd: SIGTERM, then wait for the exit.
moord_stop() {
    local pid _
    if under_systemd; then
        systemctl stop moord.service
        return 0
    fi
    pid=$(moord_pid) || return 0
    kill -TERM "$pid"
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "moord ($pid) did not exit within 60 s of SIGTERM" >&2
    return 1
}

# Under systemd the socket unit keeps listening through the restart, so clients wait.
moord_restart() {
    if under_systemd; then
        systemctl daemon-reload
        systemctl restart moord.service
        moord_wait_ready
    else
        local started
        started=$(date +%s.%N)
        moord_stop
        moord_start
        # without the socket unit, API clients see no daemon for this long
        awk -v a="$started" -v b="$(date +%s.%N)" \
            'BEGIN { printf "moord restarted: its API was away for %.2f s\n", b - a }'
    fi
}
