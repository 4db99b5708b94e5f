"""Engine-run probes against small servers on loopback: the verdicts and outputs, and a
socket made inside another network namespace (one these tests create, as moord makes a
container's) reaching a server that only listens on that namespace's 127.0.0.1."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio

from engine.containers.netprobe import NetProber, probe, socket_in
from engine.containers.probelabels import Target
from engine.kernel.netns import create_netns, delete_netns

pytestmark = pytest.mark.needs_root("entering a network namespace takes CAP_SYS_ADMIN")

HOST_NS = f"/proc/{os.getpid()}/ns/net"
Handler = Callable[[trio.SocketStream], Awaitable[None]]


def _answer(reply: bytes) -> Handler:
    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)  # the request (one segment on loopback)
        await stream.send_all(reply)
        await stream.aclose()

    return handler


async def _serve(nursery: trio.Nursery, handler: Handler, sock: socket.socket | None = None) -> int:
    """Serve `handler` on 127.0.0.1 (or on `sock`, bound already); the port."""
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    nursery.start_soon(trio.serve_listeners, handler, [listener])
    return int(sock.getsockname()[1])


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as n:
        yield n
        n.cancel_scope.cancel()


def _http(port: int, path: str = "/healthz") -> Target:
    return Target("http", "127.0.0.1", port, path)


@pytest.mark.parametrize(("reply", "exit_code", "output"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, "HTTP 200 OK"),
    (b"HTTP/1.0 204 No Content\r\n\r\n", 0, "HTTP 204 No Content"),
    (b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", 0, "HTTP 302 Found"),
    (b"HTTP/1.1 399 Whatever\r\n\r\n", 0, "HTTP 399 Whatever"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 0, "HTTP 200 OK"),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1, "HTTP 404 Not Found"),
    (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", 1, "HTTP 500 Internal Server Error"),
    (b"HTTP/1.1 199 Odd\r\n\r\n", 1, None),  # h11: a 1xx then a closed connection
])
async def test_http_verdicts(nursery: trio.Nursery, reply: bytes, exit_code: int,
                             output: str | None) -> None:
    port = await _serve(nursery, _answer(reply))
    result = await probe(_http(port), HOST_NS, 10)
    assert result.exit_code == exit_code
    if output is not None:
        assert result.output.decode() == output


async def test_the_request_sent(nursery: trio.Nursery) -> None:
    seen: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        seen.append(await stream.receive_some(65536))
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    port = await _serve(nursery, handler)
    assert (await probe(_http(port, "/ready?full=1"), HOST_NS, 10)).exit_code == 0
    head = seen[0].decode().split("\r\n")
    assert head[0] == "GET /ready?full=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{port}" in [h.lower() for h in head]


async def test_not_http_and_no_answer(nursery: trio.Nursery) -> None:
    port = await _serve(nursery, _answer(b"SSH-2.0-OpenSSH\r\n"))
    result = await probe(_http(port), HOST_NS, 10)
    assert result.exit_code == 1
    assert result.output.decode().startswith(f"127.0.0.1:{port} did not answer in HTTP")

    port = await _serve(nursery, _answer(b""))
    result = await probe(_http(port), HOST_NS, 10)
    assert result.exit_code == 1
    assert result.output.decode() == f"127.0.0.1:{port} closed the connection without a response"


async def test_refused_and_tcp() -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await probe(Target("tcp", "127.0.0.1", port), HOST_NS, 10)
        assert result.exit_code == 1
        assert result.output.decode() == f"connecting to 127.0.0.1:{port}: Connection refused"
        sock.listen(1)
        result = await probe(Target("tcp", "127.0.0.1", port), HOST_NS, 10)
        assert result.exit_code == 0
        assert result.output.decode() == f"connected to 127.0.0.1:{port}"


async def test_timeout(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    port = await _serve(nursery, silent)
    result = await probe(_http(port), HOST_NS, 0.2)
    assert result.exit_code == -1
    assert result.timed_out


async def test_no_namespace() -> None:
    result = await probe(Target("tcp", "127.0.0.1", 1), "/proc/no-such-pid/ns/net", 10)
    assert result.exit_code == -1
    assert result.output.decode().startswith("the container's network namespace: ")


async def test_a_probe_in_another_namespace(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A server on 127.0.0.1 of a namespace of its own: the probe reaches it from moord's
    thread pool, a connection from the host's namespace does not, and the worker threads
    are back in the host's namespace afterwards."""
    ns = tmp_path / "ns"
    await trio.to_thread.run_sync(create_netns, ns)
    try:
        inside = await trio.to_thread.run_sync(socket_in, str(ns), socket.AF_INET)
        inside.setblocking(True)
        inside.bind(("127.0.0.1", 0))
        port = await _serve(nursery, _answer(b"HTTP/1.1 200 OK\r\n\r\n"), inside)
        result = await probe(_http(port), str(ns), 10)
        assert (result.exit_code, result.output) == (0, b"HTTP 200 OK")
        outside = await probe(_http(port), HOST_NS, 10)
        assert outside.exit_code == 1  # refused here: the server is in the other namespace

        def thread_namespace() -> int:
            return os.stat("/proc/thread-self/ns/net").st_ino

        host_inode = os.stat(HOST_NS).st_ino
        for _ in range(8):  # whichever worker thread answers
            assert await trio.to_thread.run_sync(thread_namespace) == host_inode
    finally:
        await trio.to_thread.run_sync(delete_netns, ns)


async def test_a_failure_while_going_down_says_nothing() -> None:
    going = False

    async def going_down() -> bool:
        return going

    prober = NetProber(Target("tcp", "127.0.0.1", 1), lambda: HOST_NS, going_down)
    assert (await prober(10)) is not None
    going = True
    assert (await prober(10)) is None
