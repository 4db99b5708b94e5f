"""A burst of clients connecting back to back is queued, not refused.

Go's clients (the docker CLI, compose) connect without blocking, so a full listen backlog
is an immediate EAGAIN for them, not a wait. dockerd took 700 such connections in a row;
moord, listening with a backlog of 512 and a soft limit of 1,024 open files, refused
dozens. moord now asks for the kernel's full backlog and lifts its open files limit.
"""

from __future__ import annotations

import resource
import socket

import pytest

from tests.support.daemon import Moord
from tests.support.unix_http import read_to_end

pytestmark = pytest.mark.integration

BURST = 1000


def _allow_open_files(needed: int) -> None:
    """This test process holds every connection open at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY
                                                    else min(needed, hard), hard))


def test_a_burst_of_connections_is_queued_and_answered(moord: Moord) -> None:
    _allow_open_files(BURST + 256)
    conns: list[socket.socket] = []
    refused: list[str] = []
    try:
        for _ in range(BURST):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.setblocking(False)  # as Go connects: a full backlog fails now, not later
            try:
                conn.connect(str(moord.socket_path))
            except OSError as exc:
                refused.append(exc.strerror or str(exc))
                conn.close()
                continue
            conns.append(conn)
        assert refused == [], f"{len(refused)} of {BURST} connections refused: {set(refused)}"

        for conn in conns:
            conn.setblocking(True)
            conn.settimeout(120)
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: moord\r\nConnection: close\r\n\r\n")
        answers = [read_to_end(conn) for conn in conns]
        bad = [a[:80] for a in answers if not (a.startswith(b"HTTP/1.1 200") and a.endswith(b"OK"))]
        assert bad == [], f"{len(bad)} of {BURST} connections not answered with 200 OK: {bad[:3]}"
    finally:
        for conn in conns:
            conn.close()

    # and the clients right after the burst are served as usual
    assert moord.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    assert moord.docker("ps", "-a").returncode == 0
