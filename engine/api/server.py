"""HTTP/1.1 for the Docker API: h11 does the framing, trio the sockets.

One task per connection, keep-alive, request bodies read lazily (chunked uploads of
image tarballs stream straight to disk), streaming responses whose headers go out at
once, and the `101 UPGRADED` hijack that attach and exec use. A client that hangs up
in the middle of a stream (the docker CLI drops its `wait` after `run -d`) cancels the
handler's work for that request and nothing else.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import re
import socket as stdlib_socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import h11
import trio

import engine
from engine.api import API_VERSION, MIN_API_VERSION
from engine.api.authorization import Authorizer, authorize
from engine.api.errors import status_for
from engine.api.http import (
    ClientGone,
    EmptyResponse,
    HijackResponse,
    JSONResponse,
    RawResponse,
    Request,
    Response,
    StreamResponse,
)
from engine.api.policing import (
    BODY_STALLED,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    REFUSAL_WAIT,
    ClientTally,
    ConnectionLimits,
    Refusal,
    peer_of,
    record_cut,
    seconds_or_never,
)
from engine.api.router import Router
from engine.errors import EngineError, InvalidParameter, NotModified
from engine.metrics.catalog import METRICS

if TYPE_CHECKING:
    from engine.engine import Engine

log = logging.getLogger(__name__)

#: Connections the kernel queues before moord accepts them. Linux caps it at
#: net.core.somaxconn (4,096 by default since 5.4), the backlog Go, and so dockerd, asks
#: for: a burst of clients waits in the queue instead of being refused (EAGAIN).
LISTEN_BACKLOG = 4096

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_RECEIVE_SIZE = 256 * 1024
_REASONS = {101: b"UPGRADED"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE"})
#: How long moord tries to hand its last words (a 408, 429, 400) to a client that may
#: not be reading.
_LAST_WORDS_DEADLINE = 5.0


def _version_tuple(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


def base_headers() -> list[tuple[str, str]]:
    return [
        ("Api-Version", API_VERSION),
        ("Docker-Experimental", "false"),
        ("Ostype", "linux"),
        ("Server", f"moorage/{engine.__version__} (linux)"),
    ]


def _leaves(group: BaseExceptionGroup[EngineError]) -> list[EngineError]:
    """The engine errors in a (possibly nested) exception group."""
    found: list[EngineError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        else:
            found.append(exc)
    return found


class _Stalled(Exception):
    """The client sent nothing for as long as the read allowed."""


@attrs.define(eq=False)
class _Connection:
    stream: trio.SocketStream
    h11conn: h11.Connection = attrs.field(factory=lambda: h11.Connection(h11.SERVER))
    peer_closed: bool = False

    async def next_event(self, stall: float = 0.0) -> Any:
        """h11's next event, reading as needed; each read may wait `stall` seconds
        (0: forever) before `_Stalled` is raised."""
        while True:
            event = self.h11conn.next_event()
            if event is h11.NEED_DATA:
                await self.receive(stall)
                continue
            return event

    async def receive(self, stall: float = 0.0) -> None:
        """Feed h11 one read from the client (or its hang-up)."""
        if self.peer_closed:
            self.h11conn.receive_data(b"")
            return
        with trio.move_on_after(seconds_or_never(stall)) as waited:
            try:
                data = await self.stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
        if waited.cancelled_caught:
            raise _Stalled()
        if not data:
            self.peer_closed = True
        self.h11conn.receive_data(data)

    @property
    def has_unread(self) -> bool:
        """Bytes of a request h11 holds but has not made into an event yet."""
        return bool(self.h11conn.trailing_data[0])

    async def send(self, event: Any) -> None:
        data = self.h11conn.send(event)
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ClientGone() from exc


@attrs.define(eq=False)
class _Body:
    """Feeds a request body to the handler from the connection, chunk by chunk."""

    conn: _Connection
    #: seconds the client may pause between two pieces of the body (0: forever)
    stall: float = 0.0
    done: bool = False
    stalled: bool = False

    async def next_chunk(self) -> bytes | None:
        while not self.done:
            try:
                event = await self.conn.next_event(self.stall)
            except _Stalled:
                self.done = self.stalled = True
                raise InvalidParameter(self.stall_message) from None
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                self.done = True
                return None
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                self.done = True
                if isinstance(event, h11.ConnectionClosed):
                    raise InvalidParameter("request body ended early")
                return None
            raise InvalidParameter(f"unexpected HTTP event {type(event).__name__}")
        return None

    async def drain(self) -> None:
        while await self.next_chunk() is not None:
            pass

    @property
    def stall_message(self) -> str:
        return f"request body stalled: nothing received for {self.stall:g} s"


@attrs.define(eq=False)
class _Hijacked:
    """The raw socket after a switch of protocols, with bytes h11 already buffered."""

    stream: trio.SocketStream
    pending: bytes

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:max_bytes], self.pending[max_bytes:]
            return data
        try:
            return await self.stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send_all(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone() from exc

    async def send_eof(self) -> None:
        try:
            await self.stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def aclose(self) -> None:
        await self.stream.aclose()


@attrs.define(eq=False)
class _ChunkWriter:
    conn: _Connection

    async def send(self, data: bytes) -> None:
        if data:
            await self.conn.send(h11.Data(data=data))


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode() + b"\n"


@attrs.define(eq=False)
class APIServer:
    router: Router
    engine: Engine
    # handlers running now (streams that already sent their headers don't count)
    busy: int = 0
    idle: trio.Event = attrs.field(factory=trio.Event)
    closing: bool = False
    #: Docker's authorization plugins, asked about every request (None: none configured)
    authorizer: Authorizer | None = None
    #: how long a client may keep moord waiting, how many connections it may hold
    limits: ConnectionLimits = attrs.field(factory=ConnectionLimits)
    tally: ClientTally = attrs.field(
        default=attrs.Factory(lambda self: ClientTally(self.limits), takes_self=True))
    _accepting: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    # listening ------------------------------------------------------------
    async def serve_unix(
        self,
        path: Path,
        *,
        mode: int = 0o660,
        group: str = "",
        drain_timeout: float = 15.0,
        activated: stdlib_socket.socket | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on `path` until `close()`, then let requests in flight finish.

        After `close()` the socket is gone (new clients can't connect), requests
        already in a handler get up to `drain_timeout` seconds, and what is still
        open then (idle keep-alive connections, `logs -f`, `events`) is closed.
        An `activated` socket (systemd's, already listening) is served instead of
        binding `path`; it stays where it is after `close()`, so the clients that
        connect meanwhile wait in its backlog for the next moord.
        """
        if activated is None:
            sock = await bind_unix_socket(path, mode, group)
        else:
            sock = trio.socket.from_stdlib_socket(activated)
        listener = trio.SocketListener(sock)
        async with trio.open_nursery() as nursery:
            task_status.started()
            try:
                with self._accepting:
                    while True:
                        stream = await listener.accept()
                        nursery.start_soon(self.handle_connection, stream)
            finally:
                with trio.CancelScope(shield=True):
                    await listener.aclose()
                if activated is None:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
            self.closing = True
            with trio.move_on_after(drain_timeout):
                while self.busy:
                    await self.idle.wait()
            nursery.cancel_scope.cancel()

    def reconfigure(self, limits: ConnectionLimits) -> None:
        """New clocks and caps (a SIGHUP): for the next read and the next connection;
        connections over a lowered cap are not closed."""
        self.limits = self.tally.limits = limits

    def close(self) -> None:
        """Stop accepting connections; `serve_unix` returns once in-flight requests end."""
        self.closing = True
        self._accepting.cancel()

    # one connection ---------------------------------------------------------
    async def handle_connection(self, stream: trio.SocketStream) -> None:
        """Serve one client until it leaves. Whatever goes wrong stays with this
        connection: a client gone mid-answer (also when it surfaces inside a handler's
        nursery, wrapped in an exception group) ends it quietly, anything else is logged;
        nothing reaches the listener's nursery, which would take moord down."""
        accepted = trio.current_time()
        peer = peer_of(stream.socket)
        refusal = self.tally.admit(peer)
        try:
            if refusal is not None:
                await self._turn_away(_Connection(stream), refusal)
            else:
                await self._serve_connection(stream, accepted)
        except* (ClientGone, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except* Exception:
            log.exception("serving a connection failed")
        finally:
            if refusal is None:
                self.tally.release(peer)

    async def _turn_away(self, conn: _Connection, refusal: Refusal) -> None:
        """Answer a client over its cap with a 429, once its request head is in."""
        self.tally.record_refusal(refusal)
        try:
            with trio.move_on_after(REFUSAL_WAIT):
                await conn.next_event()
            await self._send_error(conn, 429, refusal.message)
        except h11.RemoteProtocolError:
            pass
        finally:
            with trio.CancelScope(shield=True):
                await conn.stream.aclose()

    async def _next_request(self, conn: _Connection, accepted: float | None) -> Any:
        """The next request's head, or why there is none (an h11 event; None when a
        clock ran out and the connection is to be closed).

        The head's clock starts at the accept (`accepted`, first request) or when the
        first byte of the next request arrives; before that byte the idle clock runs.
        """
        started = accepted
        if started is None:
            if not conn.has_unread and not conn.peer_closed:
                try:
                    await conn.receive(self.limits.idle_timeout)
                except _Stalled:
                    record_cut(IDLE_TIMEOUT)
                    return None
            started = trio.current_time()
        with trio.move_on_at(started + seconds_or_never(self.limits.header_timeout)):
            return await conn.next_event()
        record_cut(HEADER_TIMEOUT)
        if conn.has_unread:  # a client in the middle of its request is told why
            await self._send_error(conn, 408, "request head not received within "
                                   f"{self.limits.header_timeout:g} s")
        return None

    async def _serve_connection(self, stream: trio.SocketStream, accepted: float) -> None:
        conn = _Connection(stream)
        first: float | None = accepted
        try:
            while True:
                event = await self._next_request(conn, first)
                first = None
                if event is None or isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                if self.closing:
                    await self._send_error(conn, 503, "the daemon is shutting down")
                    return
                keep_going = await self._handle_request(conn, event)
                if not keep_going or conn.h11conn.our_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.h11conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except h11.RemoteProtocolError as exc:
            await self._send_error(conn, exc.error_status_hint, f"bad HTTP request: {exc}")
        except ClientGone:
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _send_error(self, conn: _Connection, status: int, message: str) -> None:
        """A last answer (Docker's JSON error body, `Connection: close`) if the response
        has not begun; a client that does not take it is left."""
        if conn.h11conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = error_body(message)
        headers = [*base_headers(), ("Content-Type", "application/json"),
                   ("Content-Length", str(len(body))), ("Connection", "close")]
        with trio.move_on_after(_LAST_WORDS_DEADLINE):
            try:
                await conn.send(h11.Response(status_code=status, headers=headers))
                await conn.send(h11.Data(data=body))
                await conn.send(h11.EndOfMessage())
            except (ClientGone, h11.LocalProtocolError):
                pass

    async def _handle_request(self, conn: _Connection, event: h11.Request) -> bool:
        started = time.monotonic()
        method = event.method.decode("ascii").upper()
        target = event.target.decode("latin-1")
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        split = urlsplit(target)
        path = unquote(split.path) or "/"  # Go's r.URL.Path: docker-py sends `@` as %40
        query = parse_qs(split.query, keep_blank_values=True)
        body = _Body(conn, self.limits.body_timeout)
        request = Request(method, path, query, headers, API_VERSION, body)
        self.busy += 1
        handler_done = False
        status = 0
        try:
            try:
                if self.authorizer is None:
                    response = await self._dispatch(request)
                else:
                    response = await authorize(self.authorizer, request, target, self._dispatch)
            except NotModified:
                response = EmptyResponse(304)
            except EngineError as exc:
                response = JSONResponse({"message": exc.message}, status=status_for(exc))
            except Exception as exc:
                log.exception("%s %s failed", method, target)
                response = JSONResponse({"message": f"internal error: {exc}"}, status=500)
            status = getattr(response, "status", 101)
            # labels from a fixed set: a client's odd method or path can't make new series
            METRICS.api_requests.observe(
                time.monotonic() - started, method=method if method in _METHODS else "other",
                route=request.route or "unmatched", status=str(status))
            if not body.done:
                try:
                    await body.drain()
                except InvalidParameter:
                    if not body.stalled:
                        return False
            if body.stalled:
                record_cut(BODY_STALLED)
                await self._send_error(conn, 408, body.stall_message)
                return False
            if isinstance(response, (StreamResponse, HijackResponse)):
                handler_done = True
                self._not_busy()
            return await self._send_response(conn, request, response)
        finally:
            if not handler_done:
                self._not_busy()
            log.debug("%s %s -> %s in %.1f ms", method, target, status,
                      (time.monotonic() - started) * 1000)

    def _not_busy(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self.idle.set()
            self.idle = trio.Event()

    async def _dispatch(self, request: Request) -> Response:
        path = request.path
        m = _VERSIONED.match(path)
        if m:
            version = f"{m.group(1)}.{m.group(2)}"
            path = m.group(3)
            if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
                raise InvalidParameter(
                    f"client version {version} is too old. Minimum supported API version is "
                    f"{MIN_API_VERSION}, please upgrade your client to a newer version"
                )
            if _version_tuple(version) > _version_tuple(API_VERSION):
                raise InvalidParameter(
                    f"client version {version} is too new. "
                    f"Maximum supported API version is {API_VERSION}"
                )
            request.api_version = version
        request.path = path
        found = self.router.find(request.method, path)
        if found is None:
            return JSONResponse({"message": "page not found"}, status=404)
        route, request.params = found
        request.route = route.pattern
        return await route.handler(request, self.engine)

    # sending -------------------------------------------------------------
    async def _send_response(self, conn: _Connection, request: Request, response: Response) -> bool:
        head = request.method == "HEAD"
        if isinstance(response, JSONResponse):
            payload = json.dumps(response.body).encode() + b"\n"
            extra = [("Content-Type", "application/json"), *response.headers]
            await self._send_simple(conn, response.status, extra, payload, head)
            return True
        if isinstance(response, RawResponse):
            extra = [("Content-Type", response.content_type), *response.headers]
            await self._send_simple(conn, response.status, extra, response.body, head)
            return True
        if isinstance(response, EmptyResponse):
            await conn.send(h11.Response(status_code=response.status, headers=base_headers()))
            await conn.send(h11.EndOfMessage())
            return True
        if isinstance(response, StreamResponse):
            return await self._send_stream(conn, response)
        if isinstance(response, HijackResponse):
            await self._hijack(conn, request, response)
            return False
        raise TypeError(f"unknown response {response!r}")

    async def _send_simple(
        self, conn: _Connection, status: int, extra: list[tuple[str, str]], payload: bytes, head: bool
    ) -> None:
        headers = [*base_headers(), *extra, ("Content-Length", str(len(payload)))]
        await conn.send(h11.Response(status_code=status, headers=headers))
        if not head and payload:
            await conn.send(h11.Data(data=payload))
        await conn.send(h11.EndOfMessage())

    async def _send_stream(self, conn: _Connection, response: StreamResponse) -> bool:
        headers = [*base_headers(), ("Content-Type", response.content_type), *response.headers]
        await conn.send(h11.Response(status_code=response.status, headers=headers))
        writer = _ChunkWriter(conn)
        completed = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_for_hangup, conn, nursery.cancel_scope)
            try:
                await response.produce(writer)
                completed = True
            except* ClientGone:
                pass  # also from a task of the producer's own nursery
            except* EngineError as group:
                for exc in _leaves(group):
                    log.info("stream ended with error: %s", exc.message)
            except* Exception:
                log.exception("stream producer failed")
            nursery.cancel_scope.cancel()
        if not completed or conn.peer_closed:
            return False
        await conn.send(h11.EndOfMessage())
        return True

    async def _watch_for_hangup(self, conn: _Connection, scope: trio.CancelScope) -> None:
        """Cancel a streaming handler when its client goes away."""
        while True:
            try:
                data = await conn.stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                conn.peer_closed = True
                scope.cancel()
                return
            conn.h11conn.receive_data(data)

    async def _hijack(self, conn: _Connection, request: Request, response: HijackResponse) -> None:
        upgrade = request.headers.get("upgrade", "").lower()
        if upgrade:
            headers = [
                ("Content-Type", response.media_type),
                ("Connection", "Upgrade"),
                ("Upgrade", "tcp"),
            ]
            await conn.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                      reason=_REASONS[101]))
            pending = conn.h11conn.trailing_data[0]
        else:
            raw = (f"HTTP/1.1 200 OK\r\nContent-Type: {response.media_type}\r\n\r\n").encode()
            try:
                await conn.stream.send_all(raw)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ClientGone() from exc
            pending = b""
        hijacked = _Hijacked(conn.stream, bytes(pending))
        try:
            await response.run(hijacked)
        except ClientGone:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away mid-stream
        except Exception:
            # the 101 is out: nothing to answer with; one connection's failure must never
            # take the daemon down
            log.exception("hijacked connection failed")


async def bind_unix_socket(path: Path, mode: int, group: str = "") -> trio.socket.SocketType:
    """Bind a listening unix socket at `path`, replacing a stale one, with `mode` permissions.

    `group` (if that group exists) owns the socket, so its members may use the API.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    else:
        probe.close()
        raise SystemExit(f"moord: another daemon is already listening on {path}")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    if group:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except KeyError:
            log.warning("socket group %r does not exist; the socket stays root's", group)
    os.chmod(path, mode)
    sock.listen(LISTEN_BACKLOG)
    return sock
