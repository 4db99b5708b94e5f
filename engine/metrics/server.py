"""The `/metrics` endpoint: a small HTTP/1.1 server (h11) on TCP, on moord's trio loop.

Separate from the Engine API on purpose: it listens on `metrics-addr` (dockerd's
`metrics-addr`: off unless set), answers only `GET /metrics` (and `HEAD`), takes no
request body, and a connection that sends nothing for `IDLE_TIMEOUT` seconds is
closed, so a stuck scraper holds nothing of moord's.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

import attrs
import h11
import trio

from engine.metrics.registry import CONTENT_TYPE

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0
_RECEIVE = 16384


@attrs.frozen
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen_address(text: str) -> ListenAddress:
    """`HOST:PORT` (`[v6]:PORT` for IPv6) into its parts; ValueError saying what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"metrics-addr {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9323")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"metrics-addr {text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"metrics-addr {text!r}: write an IPv6 address in brackets, [::1]:9323")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"metrics-addr {text!r}: the port must be a number from 1 to 65535")
    return ListenAddress(host, int(port_text))


def _response(conn: h11.Connection, status: int, body: bytes, content_type: str,
              head: bool) -> bytes:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    if body and not head:
        out += conn.send(h11.Data(data=body)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


def answer(method: str, target: str, render: Callable[[], str]) -> tuple[int, bytes, str]:
    """Status, body and content type for one request."""
    path = target.split("?", 1)[0]
    if path != "/metrics":
        return 404, b"not found: moord serves /metrics here\n", "text/plain; charset=utf-8"
    if method not in ("GET", "HEAD"):
        return 405, b"method not allowed\n", "text/plain; charset=utf-8"
    return 200, render().encode(), CONTENT_TYPE


async def serve_connection(stream: trio.abc.Stream, render: Callable[[], str]) -> None:
    """Answer requests on one connection until the client leaves, errs or idles."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    data = await stream.receive_some(_RECEIVE)
                if idle.cancelled_caught:
                    return
                conn.receive_data(bytes(data))
                continue
            if isinstance(event, h11.Request):
                status, body, content_type = answer(
                    event.method.decode("ascii", "replace").upper(),
                    event.target.decode("latin-1"), render)
                await stream.send_all(_response(conn, status, body, content_type,
                                                event.method == b"HEAD"))
                continue
            if isinstance(event, h11.EndOfMessage | h11.Data):
                continue  # a body nobody asked for is read and dropped
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
                continue
            return  # ConnectionClosed, PAUSED or anything unexpected
    except h11.RemoteProtocolError as exc:
        try:
            await stream.send_all(_response(conn, exc.error_status_hint, b"bad request\n",
                                            "text/plain; charset=utf-8", False))
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def open_metrics_listeners(text: str) -> list[trio.SocketListener]:
    """Bind `metrics-addr` at start-up, before anything else starts: a bad or taken
    address stops moord with a message (SystemExit), not a traceback."""
    try:
        address = parse_listen_address(text)
        listeners = await trio.open_tcp_listeners(address.port, host=address.host)
    except ValueError as exc:
        raise SystemExit(f"moord: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"moord: cannot serve metrics on {text}: {exc.strerror or exc}") from None
    log.info("metrics on http://%s/metrics", address)
    return listeners


async def serve_metrics(listeners: list[trio.SocketListener], render: Callable[[], str], *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `render()`'s exposition on `listeners` until cancelled."""

    async def handler(stream: trio.SocketStream) -> None:
        try:
            await serve_connection(stream, render)
        except Exception:
            log.exception("serving a metrics request failed")

    async with trio.open_nursery() as nursery:
        task_status.started()
        await trio.serve_listeners(handler, listeners, handler_nursery=nursery)
