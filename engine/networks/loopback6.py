"""Published ports on IPv6 loopback (`::1`), forwarded by moord itself.

The kernel DNATs a client of 127.0.0.1 into a bridge (with `route_localnet`), but not one
of ::1: IPv6 forbids the loopback address anywhere but on `lo`, so the container's reply,
turned back into one for ::1, is dropped where it arrives, on the bridge. So for a port
published on `::` or `::1`, the socket that reserves the host port
(`engine.networks.ports`) listens, the drivers' DNAT leaves ::1 alone (so only ::1
clients ever reach that socket: every other one is DNATed first), and this module
copies each connection (TCP) or each client's datagrams (UDP) to the container's IPv6
address.

It runs in moord: while moord is down, ::1 clients of a published port are refused
(DNAT for every other address, 127.0.0.1 included, keeps working).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Iterable

import attrs
import trio

from engine.networks.model import PortState
from engine.networks.ports import LOOPBACK6_BINDINGS, PortAllocator

log = logging.getLogger(__name__)

UDP_IDLE = 60.0  # a UDP client silent this long is forgotten
CHUNK = 65536

_Server = Callable[[trio.socket.SocketType, PortState], Awaitable[None]]


@attrs.define(eq=False)
class LoopbackForwarders:
    """The forwarders of running containers' ports, by container."""

    #: where the forwarders run (the network service's nursery); None: none start
    nursery: trio.Nursery | None = None
    _running: dict[str, list[tuple[trio.CancelScope, socket.socket]]] = attrs.field(factory=dict)

    def start(self, container_id: str, ports: Iterable[PortState], allocator: PortAllocator) -> None:
        """Forward the container's ports that ::1 clients can reach (idempotent)."""
        if self.nursery is None:
            return
        self.stop(container_id)
        for port in ports:
            if port.host_ip not in LOOPBACK6_BINDINGS or ":" not in port.container_ip:
                continue
            sock = allocator.reservation(port.protocol, port.host_ip, port.host_port)
            if sock is None:
                continue
            scope = trio.CancelScope()
            self._running.setdefault(container_id, []).append((scope, sock))
            if port.protocol == "tcp":
                sock.listen(128)
                self.nursery.start_soon(_guarded, scope, _serve_tcp, sock, port)
            else:
                self.nursery.start_soon(_guarded, scope, _serve_udp, sock, port)

    def stop(self, container_id: str) -> None:
        """Stop them, before the reserving sockets are closed."""
        for scope, sock in self._running.pop(container_id, []):
            scope.cancel()
            trio.lowlevel.notify_closing(sock)


async def _guarded(scope: trio.CancelScope, serve: _Server, sock: socket.socket,
                   port: PortState) -> None:
    with scope:
        try:
            await serve(trio.socket.from_stdlib_socket(sock), port)
        except trio.ClosedResourceError:
            pass
        except Exception:
            log.exception("forwarding [::1]:%d/%s stopped", port.host_port, port.protocol)


async def _serve_tcp(listener: trio.socket.SocketType, port: PortState) -> None:
    async with trio.open_nursery() as nursery:
        while True:
            try:
                conn, _ = await listener.accept()
            except OSError as exc:
                if isinstance(exc, trio.ClosedResourceError):
                    raise
                log.debug("accepting on [::1]:%d: %s", port.host_port, exc)
                continue
            nursery.start_soon(_pipe, trio.SocketStream(conn), port)


async def _pipe(client: trio.SocketStream, port: PortState) -> None:
    async with client:
        try:
            upstream = await trio.open_tcp_stream(port.container_ip, port.container_port)
        except OSError as exc:
            log.debug("[::1]:%d -> [%s]:%d: %s", port.host_port, port.container_ip,
                      port.container_port, exc)
            return
        async with upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_copy, client, upstream, nursery.cancel_scope)
            nursery.start_soon(_copy, upstream, client, nursery.cancel_scope)


async def _copy(source: trio.SocketStream, sink: trio.SocketStream,
                pair: trio.CancelScope) -> None:
    """One direction until end of file (then half-close the other side); a broken
    connection ends both directions."""
    try:
        while chunk := await source.receive_some(CHUNK):
            await sink.send_all(chunk)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pair.cancel()


async def _serve_udp(listener: trio.socket.SocketType, port: PortState) -> None:
    sessions: dict[tuple[str, int], trio.socket.SocketType] = {}
    async with trio.open_nursery() as nursery:
        while True:
            data, peer = await listener.recvfrom(CHUNK)
            key = (peer[0], peer[1])
            session = sessions.get(key)
            if session is None:
                session = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                try:
                    await session.connect((port.container_ip, port.container_port))
                except OSError as exc:
                    session.close()
                    log.debug("UDP [::1]:%d -> [%s]:%d: %s", port.host_port, port.container_ip,
                              port.container_port, exc)
                    continue
                sessions[key] = session
                nursery.start_soon(_udp_replies, listener, session, peer, sessions, key)
            try:
                await session.send(data)
            except OSError as exc:
                log.debug("UDP to [%s]:%d: %s", port.container_ip, port.container_port, exc)


async def _udp_replies(listener: trio.socket.SocketType, session: trio.socket.SocketType,
                       peer: tuple[str, int], sessions: dict[tuple[str, int], trio.socket.SocketType],
                       key: tuple[str, int]) -> None:
    with session:
        try:
            while True:
                with trio.move_on_after(UDP_IDLE) as idle:
                    data = await session.recv(CHUNK)
                if idle.cancelled_caught:
                    break
                await listener.sendto(data, peer)
        except OSError as exc:
            log.debug("UDP replies to [%s]:%d: %s", peer[0], peer[1], exc)
        finally:
            sessions.pop(key, None)


__all__ = ["LoopbackForwarders"]
