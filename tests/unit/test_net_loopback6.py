"""moord's forwarder for ports published on ::1, over real sockets on the loopback: the
"container" is an echo server on ::1 the test runs itself."""

from __future__ import annotations

import socket

import pytest
import trio

from engine.networks.loopback6 import LoopbackForwarders
from engine.networks.model import PortState
from engine.networks.ports import PortAllocator


async def _echo_tcp(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)

    listeners = await trio.open_tcp_listeners(0, host="::1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(echo, listeners)


async def _echo_udp(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with sock:
        await sock.bind(("::1", 0))
        task_status.started(sock.getsockname()[1])
        while True:
            data, peer = await sock.recvfrom(65536)
            await sock.sendto(b"echo:" + data, peer)


async def test_tcp_and_udp_reach_the_target_and_stop(nursery: trio.Nursery) -> None:
    target_tcp = await nursery.start(_echo_tcp)
    target_udp = await nursery.start(_echo_udp)
    allocator = PortAllocator()
    forwarders = LoopbackForwarders(nursery)
    try:
        tcp_port = allocator.allocate("c1", "tcp", "::1")
        udp_port = allocator.allocate("c1", "udp", "::1")
        forwarders.start("c1", [
            PortState("tcp", "::1", tcp_port, target_tcp, "net", "::1"),
            PortState("udp", "::1", udp_port, target_udp, "net", "::1"),
            PortState("tcp", "0.0.0.0", tcp_port, 80, "net", "10.0.0.2"),  # not for ::1: left out
        ], allocator)

        stream = await trio.open_tcp_stream("::1", tcp_port)
        async with stream:
            await stream.send_all(b"hello")
            with trio.fail_after(5):
                assert await stream.receive_some(100) == b"hello"

        client = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        with client:
            await client.connect(("::1", udp_port))
            await client.send(b"ping")
            with trio.fail_after(5):
                assert await client.recv(100) == b"echo:ping"
    finally:
        forwarders.stop("c1")
        allocator.release("c1")
        allocator.close()
    # the reserving socket is closed with the release: nothing answers any more
    with pytest.raises(OSError):  # noqa: PT011 - refused, whatever the words
        await trio.open_tcp_stream("::1", tcp_port)
