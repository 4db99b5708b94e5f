"""A client that hangs up in the middle of a streamed answer ends its own connection only.

Streaming handlers write from tasks of their own nursery (a build's output pump), so the
`ClientGone` of a broken pipe reaches the server wrapped in an exception group, often
beside the cancellation the hang-up watcher caused. The server must take it as the end
of that connection: a docker-py build test that closed early once took moord down.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import trio

from engine.api.http import ClientGone, Request, StreamResponse, StreamWriter
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.errors import SystemFailure

router = Router()


@router.route("GET", "/_ping")
async def ping(req: Request, engine: Any) -> StreamResponse:
    async def produce(out: StreamWriter) -> None:
        await out.send(b"OK")

    return StreamResponse(produce, content_type="text/plain")


@router.route("GET", "/pump-gone")
async def pump_gone(req: Request, engine: Any) -> StreamResponse:
    """A producer whose writer task finds the client gone while the body still works."""

    async def produce(out: StreamWriter) -> None:
        async def pump() -> None:
            # a write under way when the hang-up's cancellation comes: its broken pipe
            # meets the body's Cancelled in one group
            with trio.CancelScope(shield=True):
                await trio.sleep(0.1)
                raise ClientGone()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            await trio.sleep_forever()

    return StreamResponse(produce)


@router.route("GET", "/task-fails")
async def task_fails(req: Request, engine: Any) -> StreamResponse:
    async def produce(out: StreamWriter) -> None:
        async def helper() -> None:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.1)
                raise SystemFailure("the helper task failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(helper)
            await trio.sleep_forever()

    return StreamResponse(produce)


def _get(path: Path, target: str, *, hang_up: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = s.recv(65536)
        if hang_up:
            return data
        while b"\r\n0\r\n\r\n" not in data:
            more = s.recv(65536)
            if not more:
                break
            data += more
        return data


async def test_a_hang_up_inside_a_producers_nursery_leaves_the_server_up(tmp_path: Path) -> None:
    server = APIServer(route_table([router]), None)  # type: ignore[arg-type]
    sock = tmp_path / "api.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))
        for target in ("/pump-gone", "/task-fails"):
            head = await trio.to_thread.run_sync(lambda t=target: _get(sock, t, hang_up=True))
            assert head.startswith(b"HTTP/1.1 200")
            await trio.sleep(0.3)  # the producer's task fails after the client left
        answer = await trio.to_thread.run_sync(lambda: _get(sock, "/_ping"))
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"OK" in answer
        server.close()
