"""Attach sessions: clients that want a container's stdio through conmon's socket.

conmon serves `<bundle>/attach`, a SOCK_SEQPACKET socket: each packet it sends is
one byte of stream id (2 stdout, 3 stderr) and up to 8 KiB of data; what a client
sends is raw stdin; a client's half-close closes the container's stdin. Output is
not replayed, so `docker run` attaches before `start`: such sessions wait here and
are connected after conmon created the container and before the runtime starts it.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import trio

from engine.errors import SystemFailure
from engine.runtime.conmon import attach_socket_path

CONMON_STDOUT = 2
CONMON_STDERR = 3
PACKET_SIZE = 8193


@attrs.define(eq=False)
class PendingAttach:
    ready: trio.Event = attrs.field(factory=trio.Event)
    sock: trio.socket.SocketType | None = None
    error: str = ""


async def connect_attach_socket(bundle: Path) -> trio.socket.SocketType:
    fd, path = attach_socket_path(bundle)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_SEQPACKET)
    try:
        await sock.connect(path)
    except OSError as exc:
        sock.close()
        raise SystemFailure(f"cannot attach to the container: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return sock


@attrs.define(eq=False)
class AttachHub:
    pending: dict[str, list[PendingAttach]] = attrs.field(factory=dict)

    def register(self, container_id: str) -> PendingAttach:
        waiter = PendingAttach()
        self.pending.setdefault(container_id, []).append(waiter)
        return waiter

    def cancel(self, container_id: str, waiter: PendingAttach) -> None:
        waiters = self.pending.get(container_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if waiter.sock is not None:
            waiter.sock.close()

    async def connect_pending(self, container_id: str, bundle: Path) -> None:
        """Connect every waiting session before the container's process starts."""
        for waiter in self.pending.pop(container_id, []):
            try:
                waiter.sock = await connect_attach_socket(bundle)
            except SystemFailure as exc:
                waiter.error = exc.message
            waiter.ready.set()

    def start_failed(self, container_id: str, message: str) -> None:
        for waiter in self.pending.pop(container_id, []):
            waiter.error = message
            waiter.ready.set()
