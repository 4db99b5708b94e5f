"""Engine-run HTTP and TCP probes: moord connects from the host into the container's
network namespace, so the image needs no curl or wget and runs nothing for them.

A socket belongs to the network namespace it was created in, whichever thread uses it
later. So a worker thread enters the container's namespace (`/proc/<pid>/ns/net`, which
holds for every network mode: bridge, `none`, `container:`, `host`), creates a
non-blocking socket, and switches back before anything else runs on it
(`engine.kernel.netns.in_netns`); trio then connects and talks on that socket under the
probe's deadline. That reaches a service listening on the container's 127.0.0.1 only,
and one in a container without a network.

Verdicts, as the health loop reads an `ExecResult`: exit 0 for a connection (TCP) or a
status 200-399 (HTTP, as Kubernetes' httpGet; redirects are not followed); exit 1 for a
refused connection, another status, or a reply that isn't HTTP; exit -1 when the
namespace could not be entered, and for the timeout (Docker's `Health check exceeded
timeout`). The output says what happened: `HTTP 200 OK`, `connected to 127.0.0.1:5432`,
`connecting to 127.0.0.1:8080: Connection refused`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable

import attrs
import h11
import trio

from engine.containers.probelabels import Target
from engine.kernel.netns import in_netns
from engine.runtime.exec import ExecResult

USER_AGENT = "moorage-probe"
MAX_RESPONSE_HEAD = 64 * 1024  # a status line and headers longer than this are not HTTP we want
RECEIVE_SIZE = 16 * 1024


def socket_in(netns: str, family: int) -> socket.socket:
    """A non-blocking TCP socket made inside the namespace at `netns` (blocks: a worker
    thread's job; the thread is back in moord's namespace when this returns)."""
    with in_netns(netns):
        return socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)


def _failed(exit_code: int, text: str) -> ExecResult:
    return ExecResult(exit_code=exit_code, output=text.encode())


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


async def probe(target: Target, netns: str, give_up_after: float) -> ExecResult:
    """One probe of `target` inside the namespace at `netns`, all of it within `give_up_after` s."""
    family = socket.AF_INET6 if target.ip.version == 6 else socket.AF_INET
    with trio.move_on_after(give_up_after):
        try:
            raw = await trio.to_thread.run_sync(socket_in, netns, family)
        except OSError as exc:
            return _failed(-1, f"the container's network namespace: {exc.strerror or exc}")
        with trio.socket.from_stdlib_socket(raw) as sock:
            try:
                await sock.connect((target.host, target.port))
            except OSError as exc:
                return _failed(1, f"connecting to {target.address}: {_reason(exc)}")
            if target.kind == "tcp":
                return ExecResult(exit_code=0, output=f"connected to {target.address}".encode())
            return await _http_get(sock, target)
    return ExecResult(exit_code=-1, timed_out=True)


async def _http_get(sock: trio.socket.SocketType, target: Target) -> ExecResult:
    """GET the target's path on a connected socket; the verdict is the status code."""
    conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
    request = h11.Request(method="GET", target=target.path, headers=[
        ("Host", target.address), ("User-Agent", USER_AGENT), ("Accept", "*/*"),
        ("Connection", "close")])
    data = conn.send(request) + (conn.send(h11.EndOfMessage()) or b"")
    try:
        while data:
            sent = await sock.send(data)
            data = data[sent:]
        answered = False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await sock.recv(RECEIVE_SIZE)
                if not chunk and not answered:
                    return _failed(1, f"{target.address} closed the connection without a "
                                      "response")
                answered = True
                conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                reason = event.reason.decode("latin-1")
                text = f"HTTP {event.status_code} {reason}".rstrip()
                return ExecResult(exit_code=0 if 200 <= event.status_code < 400 else 1,
                                  output=text.encode())
            # else an informational (1xx) response: the final one follows
    except OSError as exc:
        return _failed(1, f"talking to {target.address}: {_reason(exc)}")
    except h11.RemoteProtocolError as exc:
        return _failed(1, f"{target.address} did not answer in HTTP: {exc}")


@attrs.define(eq=False)
class NetProber:
    """Probes one container's target; as the health loop calls an executor (timeout → result)."""

    target: Target
    netns: Callable[[], str]  # the container's namespace file, as of now (its pid may change)
    going_down: Callable[[], Awaitable[bool]]  # being stopped, or no longer running?

    async def __call__(self, give_up_after: float) -> ExecResult | None:
        result = await probe(self.target, self.netns(), give_up_after)
        if result.exit_code != 0 and await self.going_down():
            return None  # the container went away under the probe: that says nothing
        return result
