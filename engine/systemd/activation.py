"""Socket activation: the listening sockets systemd made before it started moord.

sd_listen_fds(3): `$LISTEN_FDS` sockets start at fd 3, meant for the process whose pid is
`$LISTEN_PID`. With `moord.socket` the API socket outlives moord: while moord restarts,
clients' connections wait in the socket's backlog instead of failing, and the next
moord accepts them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

log = logging.getLogger("moord.activation")

LISTEN_FDS_START = 3
ACTIVATION_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def listen_fds(environ: MutableMapping[str, str], pid: int | None = None) -> list[int]:
    """The fds passed to this process (none when they are meant for another one).

    The variables are removed from `environ` so no child takes the sockets for its own,
    and the fds are made close-on-exec so none inherits them.
    """
    count, for_pid = environ.get("LISTEN_FDS", ""), environ.get("LISTEN_PID", "")
    for key in ACTIVATION_VARIABLES:
        environ.pop(key, None)
    if not count:
        return []
    if for_pid != str(os.getpid() if pid is None else pid):
        log.warning("ignoring LISTEN_FDS: they are for pid %s, not this process", for_pid or "?")
        return []
    try:
        n = int(count)
    except ValueError:
        log.warning("ignoring LISTEN_FDS=%r: not a number", count)
        return []
    fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + max(0, n)))
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


def listening_unix_socket(fds: list[int]) -> socket.socket | None:
    """The first passed fd that is a listening unix stream socket, as a socket object.

    The others (moord needs one) are closed with a warning, so a unit that passes more
    is noticed rather than leaking descriptors.
    """
    found: socket.socket | None = None
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            log.warning("passed fd %d is not a socket (%s); ignored", fd, exc)
            continue
        usable = (found is None and sock.family == socket.AF_UNIX
                  and sock.type == socket.SOCK_STREAM
                  and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1)
        if usable:
            found = sock
            continue
        log.warning("passed fd %d (%s) is not the listening unix stream socket moord serves; "
                    "closed", fd, sock.getsockname() or "unnamed")
        sock.close()
    return found


def socket_path(sock: socket.socket) -> str:
    """Where a passed unix socket lives ('' when it is abstract or unnamed)."""
    name = sock.getsockname()
    return name if isinstance(name, str) else ""
