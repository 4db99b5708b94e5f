"""Connection policing: the clocks a client owes the server, and the caps on connections.

The server runs for real on a unix socket with clocks of a second; the clients are plain
blocking sockets on worker threads. What is checked is what happens (a 408, a close, a
429, bytes still flowing), never how long it took.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from engine.api.http import (
    HijackedStream,
    HijackResponse,
    JSONResponse,
    Request,
    StreamResponse,
    StreamWriter,
)
from engine.api.policing import ClientTally, ConnectionLimits, Peer, Refusal, peer_of
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.config import DaemonConfig
from engine.metrics.catalog import METRICS
from tests.support.unix_http import connect, error_message, read_to_end

router = Router()
#: every clock of the test server; the clients pause for much longer or much shorter
CLOCK = 1.0


@router.route("GET", "/_ping")
async def ping(req: Request, engine: Any) -> JSONResponse:
    return JSONResponse("OK")


@router.route("POST", "/upload")
async def upload(req: Request, engine: Any) -> JSONResponse:
    size = 0
    async for chunk in req.body_chunks():
        size += len(chunk)
    return JSONResponse({"size": size})


@router.route("GET", "/quiet-stream")
async def quiet_stream(req: Request, engine: Any) -> StreamResponse:
    """Says nothing for longer than every clock, then one word (a `wait`, a quiet log)."""

    async def produce(out: StreamWriter) -> None:
        await trio.sleep(CLOCK * 2.5)
        await out.send(b"still here\n")

    return StreamResponse(produce, content_type="text/plain")


@router.route("POST", "/echo")
async def echo(req: Request, engine: Any) -> HijackResponse:
    """An attach whose client may keep quiet for a long time: echoes what comes."""

    async def run(conn: HijackedStream) -> None:
        while data := await conn.receive_some():
            await conn.send_all(data)

    return HijackResponse(run)


@asynccontextmanager
async def serving(tmp_path: Path, limits: ConnectionLimits) -> AsyncIterator[Path]:
    server = APIServer(route_table([router]), None, limits=limits)  # type: ignore[arg-type]
    sock = tmp_path / "api.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))
        yield sock
        server.close()


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


# the clocks ------------------------------------------------------------------------

TIMED = ConnectionLimits(header_timeout=CLOCK, idle_timeout=CLOCK, body_timeout=CLOCK)


async def test_a_half_sent_head_is_answered_408_and_closed(tmp_path: Path) -> None:
    before = METRICS.api_connections_cut.get(reason="header-timeout")

    def stall() -> bytes:
        with connect(path) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")  # no blank line: never ends
            return read_to_end(s)

    async with serving(tmp_path, TIMED) as path:
        answer = await in_thread(stall)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert "request head not received" in error_message(answer)
    assert METRICS.api_connections_cut.get(reason="header-timeout") == before + 1


async def test_a_connection_that_never_speaks_is_closed_without_an_answer(tmp_path: Path) -> None:
    def silent() -> bytes:
        with connect(path) as s:
            return read_to_end(s)

    async with serving(tmp_path, TIMED) as path:
        assert await in_thread(silent) == b""


async def test_an_idle_keep_alive_connection_is_closed_quietly(tmp_path: Path) -> None:
    before = METRICS.api_connections_cut.get(reason="idle-timeout")

    def idle() -> bytes:
        with connect(path) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            return read_to_end(s)  # the answer, then the close after the idle clock

    async with serving(tmp_path, TIMED) as path:
        answer = await in_thread(idle)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.count(b"HTTP/1.1") == 1
    assert METRICS.api_connections_cut.get(reason="idle-timeout") == before + 1


async def test_a_stalled_body_is_cut_with_408(tmp_path: Path) -> None:
    before = METRICS.api_connections_cut.get(reason="body-stalled")

    def stall() -> bytes:
        with connect(path) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
            return read_to_end(s)

    async with serving(tmp_path, TIMED) as path:
        answer = await in_thread(stall)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert "request body stalled" in error_message(answer)
    assert METRICS.api_connections_cut.get(reason="body-stalled") == before + 1


async def test_a_slow_body_that_keeps_moving_is_taken_whole(tmp_path: Path) -> None:
    pieces = 12  # far more than one body clock in all, each pause well inside one

    def drip() -> bytes:
        with connect(path) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(pieces):
                s.sendall(b"5\r\nhello\r\n")
                time.sleep(CLOCK / 4)
            s.sendall(b"0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            return read_to_end(s)

    async with serving(tmp_path, TIMED) as path:
        answer = await in_thread(drip)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"size": 5 * pieces}


async def test_a_stream_that_has_begun_outlives_every_clock(tmp_path: Path) -> None:
    def follow() -> bytes:
        with connect(path) as s:
            s.sendall(b"GET /quiet-stream HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"still here" not in data:
                chunk = s.recv(65536)
                assert chunk, f"closed before the stream spoke: {data!r}"
                data += chunk
            return data

    async with serving(tmp_path, TIMED) as path:
        assert b"HTTP/1.1 200 " in await in_thread(follow)


async def test_a_quiet_hijacked_connection_outlives_every_clock(tmp_path: Path) -> None:
    def attach() -> bytes:
        with connect(path) as s:
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      b"Upgrade: tcp\r\n\r\n")
            head = s.recv(65536)
            assert head.startswith(b"HTTP/1.1 101 "), head
            time.sleep(CLOCK * 2.5)  # stdin says nothing for a while
            s.sendall(b"hello")
            return s.recv(65536)

    async with serving(tmp_path, TIMED) as path:
        assert await in_thread(attach) == b"hello"


# the caps --------------------------------------------------------------------------


async def test_a_process_over_its_cap_gets_429_until_one_closes(tmp_path: Path) -> None:
    before = METRICS.api_connections_refused.get(cap="process")
    limits = ConnectionLimits(per_process=2)

    def ping(s: socket.socket) -> bytes:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(65536)

    def over_the_cap() -> tuple[bytes, bytes]:
        held = [connect(path), connect(path)]
        for s in held:
            assert ping(s).startswith(b"HTTP/1.1 200 ")  # admitted, and kept open
        with connect(path) as third:
            third.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = read_to_end(third)
        held.pop().close()
        for _ in range(200):  # until the server has seen the close
            with connect(path) as again:
                answer = ping(again)
            if answer.startswith(b"HTTP/1.1 200 "):
                break
            time.sleep(0.05)
        held.pop().close()
        return refused, answer

    async with serving(tmp_path, limits) as path:
        refused, answer = await in_thread(over_the_cap)
    assert refused.startswith(b"HTTP/1.1 429 ")
    message = error_message(refused)
    assert f"process {os.getpid()}" in message
    assert "api-max-connections-per-process" in message
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert METRICS.api_connections_refused.get(cap="process") >= before + 1


def _cap(refusal: Refusal | None) -> str | None:
    return refusal.cap if refusal is not None else None


def test_the_tally_caps_processes_and_users_apart() -> None:
    open_before = METRICS.api_connections.get()
    tally = ClientTally(ConnectionLimits(per_process=2, per_user=3))
    a, b = Peer(pid=100, uid=0, gid=0), Peer(pid=200, uid=0, gid=0)
    assert tally.admit(a) is None
    assert tally.admit(a) is None
    assert _cap(tally.admit(a)) == "process"
    assert tally.admit(b) is None
    assert _cap(tally.admit(b)) == "user"  # 3 for uid 0 already
    assert tally.admit(Peer(pid=300, uid=1000, gid=1000)) is None  # another user
    assert METRICS.api_connections.get() == open_before + 4
    tally.release(a)
    assert tally.admit(b) is None
    for peer in (a, b, b, Peer(pid=300, uid=1000, gid=1000)):
        tally.release(peer)
    assert (tally.by_pid, tally.by_uid) == ({}, {})
    assert METRICS.api_connections.get() == open_before  # refusals were never counted in


def test_a_peer_from_another_pid_namespace_counts_for_its_uid_only() -> None:
    tally = ClientTally(ConnectionLimits(per_process=1, per_user=2))
    hidden = Peer(pid=0, uid=0, gid=0)
    assert tally.admit(hidden) is None
    assert tally.admit(hidden) is None  # no process cap without a pid
    assert _cap(tally.admit(hidden)) == "user"
    assert tally.admit(None) is None  # no credentials: no cap applies


def test_zero_turns_the_caps_off() -> None:
    tally = ClientTally(ConnectionLimits())
    peer = Peer(pid=100, uid=0, gid=0)
    assert all(tally.admit(peer) is None for _ in range(10_000))


async def test_the_peer_is_told_by_the_kernel() -> None:
    left, right = trio.socket.socketpair()
    with left, right:
        assert peer_of(left) == Peer(os.getpid(), os.getuid(), os.getgid())


@pytest.mark.parametrize("key", ["api_header_timeout", "api_idle_timeout", "api_body_timeout",
                                 "api_max_connections_per_process",
                                 "api_max_connections_per_user"])
def test_negative_limits_are_refused(key: str) -> None:
    negative: dict[str, Any] = {key: -1}
    with pytest.raises(ValueError, match=key):
        DaemonConfig(**negative)
    off: dict[str, Any] = {key: 0}
    assert getattr(DaemonConfig(**off), key) == 0
