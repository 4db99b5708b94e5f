"""A small blocking HTTP/1.1 client for the Docker Engine API on a unix socket.

Hand-written on the standard library because `moor` starts for every command and
must start fast; and because the API needs things general clients make awkward:
responses whose headers and body arrive far apart (`wait`), chunked bodies read
as they arrive (`logs -f`), streamed request bodies (`import`), and the `101`
hijack that turns the connection into a raw duplex stream (`attach`).

Each request uses its own connection: unix-socket connects are cheap, and a
stream left open (the `wait` that `run` holds) never blocks another request.
"""

from __future__ import annotations

import json as jsonlib
import os
import socket
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any
from urllib.parse import quote, urlencode

import attrs

from engine.cli.streams import ChunkedDecoder

API_VERSION = "1.50"
DEFAULT_HOST = "unix:///run/moorage/moorage.sock"
USER_AGENT = "moor/0.1.0"
_RECV_SIZE = 64 * 1024
_MAX_HEADER_BYTES = 64 * 1024

ParamValue = str | int | bool | None | Sequence[str]
Body = bytes | Iterable[bytes] | IO[bytes] | None


class ClientError(Exception):
    """Talking to the daemon failed; the message is meant for the user as it is."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class DaemonUnreachable(ClientError):
    """No daemon answers at the configured address."""


class ProtocolError(ClientError):
    """The daemon's reply is not the HTTP we expected (or it hung up mid-reply)."""


class APIError(ClientError):
    """The daemon answered with an error status and (usually) a `{"message"}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


def resolve_host(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Where the daemon is: `-H`, then MOORAGE_HOST, then DOCKER_HOST, then the default."""
    env = os.environ if environ is None else environ
    for value in (flag, env.get("MOORAGE_HOST"), env.get("DOCKER_HOST")):
        if value:
            return value
    return DEFAULT_HOST


def socket_path_of(host: str) -> str:
    """The filesystem path of a `unix://` host; anything else is refused clearly."""
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
        if not path:
            raise ClientError(f"invalid host {host!r}: the unix socket path is empty")
        return path
    if host.startswith("/"):
        return host
    scheme = host.split("://", 1)[0] if "://" in host else host
    raise ClientError(
        f"unsupported daemon address {host!r}: moor only speaks to a unix socket "
        f"(unix:///path), not {scheme}"
    )


def _encode_params(params: Mapping[str, ParamValue] | None) -> str:
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, int | str):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, str(v)) for v in value)
    return "?" + urlencode(pairs) if pairs else ""


def quote_path(segment: str) -> str:
    """Escape a name or ID for use in a URL path (image names keep their `/` and `:`)."""
    return quote(segment, safe="/:@")


def container_path(name: str, suffix: str = "") -> str:
    """`/containers/<name><suffix>`, the name escaped: the path of one container's endpoint."""
    return f"/containers/{quote_path(name)}{suffix}"


def error_message(status: int, reason: str, headers: Mapping[str, str], body: bytes) -> str:
    """Docker's rule: a JSON `{"message"}` if the body is JSON, else the body as text."""
    text = body.decode("utf-8", "replace").strip()
    if "json" in headers.get("content-type", ""):
        try:
            data = jsonlib.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(data, dict) and isinstance(data.get("message"), str):
                return str(data["message"])
    return text or f"{status} {reason}".strip()


@attrs.define(eq=False)
class Connection:
    """A socket plus the bytes already read from it but not yet consumed."""

    sock: socket.socket
    buffer: bytearray = attrs.field(factory=bytearray)

    def recv(self) -> bytes:
        """Buffered bytes first, then whatever the socket has; b"" at EOF."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        return self.sock.recv(_RECV_SIZE)

    def read_head(self) -> bytes:
        """Everything up to the blank line that ends the response headers."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > _MAX_HEADER_BYTES:
                raise ProtocolError("the daemon sent oversized response headers")
            data = self.sock.recv(_RECV_SIZE)
            if not data:
                raise ProtocolError("the daemon closed the connection before answering")
            self.buffer += data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@attrs.define(eq=False)
class Response:
    """Status and headers at once; the body read later, whole or as it arrives."""

    status: int
    reason: str
    headers: dict[str, str]
    conn: Connection
    has_body: bool = True
    consumed: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def iter_body(self) -> Iterator[bytes]:
        """Body bytes in arrival order, with the transfer framing removed."""
        if self.consumed:
            return
        self.consumed = True
        try:
            if not self.has_body:
                return
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                decoder = ChunkedDecoder()
                while not decoder.done:
                    data = self.conn.recv()
                    if not data:
                        raise ProtocolError("the daemon ended a chunked response early")
                    yield from (piece for piece in decoder.feed(data) if piece)
            elif "content-length" in self.headers:
                try:
                    remaining = int(self.headers["content-length"])
                except ValueError:
                    raise ProtocolError("the daemon sent a bad Content-Length") from None
                while remaining > 0:
                    data = self.conn.recv()
                    if not data:
                        raise ProtocolError("the daemon closed the connection mid-response")
                    if len(data) > remaining:
                        data = data[:remaining]
                    remaining -= len(data)
                    yield data
            else:
                while data := self.conn.recv():
                    yield data
        finally:
            self.close()

    def read(self) -> bytes:
        return b"".join(self.iter_body())

    def json(self) -> Any:
        data = self.read()
        if not data.strip():
            return None
        try:
            return jsonlib.loads(data)
        except ValueError:
            raise ProtocolError(
                f"the daemon sent a reply that is not JSON: {data[:200]!r}"
            ) from None

    def raise_for_status(self) -> Response:
        """Turn an error status into `APIError`, reading the body for the message."""
        if not self.ok:
            body = self.read()
            raise APIError(
                self.status, error_message(self.status, self.reason, self.headers, body)
            )
        return self

    def close(self) -> None:
        self.consumed = True
        self.conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.define(eq=False)
class Hijacked:
    """The duplex byte stream after `101 UPGRADED` (attach, exec start)."""

    conn: Connection
    content_type: str

    @property
    def sock(self) -> socket.socket:
        return self.conn.sock

    @property
    def buffered(self) -> bytes:
        """Stream bytes that arrived with the `101` headers; `chunks()` yields them first."""
        return bytes(self.conn.buffer)

    def chunks(self) -> Iterator[bytes]:
        """Bytes from the daemon until it closes its side."""
        while True:
            try:
                data = self.conn.recv()
            except ConnectionResetError:
                return
            if not data:
                return
            yield data

    def send(self, data: bytes) -> None:
        self.conn.sock.sendall(data)

    def close_write(self) -> None:
        """Half-close: the daemon sees EOF on stdin and keeps sending output."""
        try:
            self.conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def shutdown(self) -> None:
        """End the session both ways (a detach): our reader sees the end at once."""
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.conn.close()


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ProtocolError(f"the daemon did not answer with HTTP: {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise ProtocolError(f"bad status line from the daemon: {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, parts[2] if len(parts) > 2 else "", headers


@attrs.define
class Client:
    """Requests to one daemon; every path is prefixed with `/v1.50` unless told not to."""

    host: str = DEFAULT_HOST
    api_version: str = API_VERSION

    @property
    def socket_path(self) -> str:
        return socket_path_of(self.host)

    def connect(self) -> Connection:
        path = self.socket_path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            sock.close()
            raise DaemonUnreachable(
                f"Cannot connect to the moorage daemon at unix://{path}. Is moord running?"
            ) from None
        except PermissionError:
            sock.close()
            raise DaemonUnreachable(
                f"permission denied while trying to connect to the moorage daemon socket "
                f"at unix://{path}"
            ) from None
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(
                f"Cannot connect to the moorage daemon at unix://{path}: {exc.strerror or exc}"
            ) from None
        return Connection(sock)

    def url(self, path: str, params: Mapping[str, ParamValue] | None = None,
            versioned: bool = True) -> str:
        prefix = f"/v{self.api_version}" if versioned else ""
        return prefix + path + _encode_params(params)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, ParamValue] | None,
        json: Any,
        body: Body,
        headers: Mapping[str, str] | None,
        versioned: bool,
    ) -> Connection:
        target = self.url(path, params, versioned)
        head = [f"{method} {target} HTTP/1.1", "Host: api.moby.localhost",
                f"User-Agent: {USER_AGENT}"]
        extra = dict(headers or {})
        payload: bytes | None = None
        stream: Iterable[bytes] | IO[bytes] | None = None
        length: int | None = None
        if json is not None:
            payload = jsonlib.dumps(json).encode()
            extra.setdefault("Content-Type", "application/json")
        elif isinstance(body, bytes):
            payload = body
        elif body is not None:
            stream = body
            length = _known_length(body)
        if payload is not None:
            head.append(f"Content-Length: {len(payload)}")
        elif stream is not None:
            head.append(f"Content-Length: {length}" if length is not None
                        else "Transfer-Encoding: chunked")
        elif method in ("POST", "PUT"):
            head.append("Content-Length: 0")
        head.extend(f"{k}: {v}" for k, v in extra.items())
        conn = self.connect()
        try:
            conn.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if payload:
                conn.sock.sendall(payload)
            elif stream is not None:
                _send_stream(conn.sock, stream, chunked=length is None)
        except BrokenPipeError:
            # The daemon may refuse early and close; its answer is still worth reading.
            pass
        except BaseException:
            conn.close()
            raise
        return conn

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, ParamValue] | None = None,
        *,
        json: Any = None,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        versioned: bool = True,
    ) -> Response:
        """Send a request and return once the response headers are in."""
        conn = self._send(method, path, params, json, body, headers, versioned)
        try:
            status, reason, resp_headers = _parse_head(conn.read_head())
            while 100 <= status < 200 and status != 101:  # skip interim responses
                status, reason, resp_headers = _parse_head(conn.read_head())
        except ConnectionResetError:
            conn.close()
            raise ProtocolError("the daemon reset the connection") from None
        except BaseException:
            conn.close()
            raise
        has_body = method != "HEAD" and status not in (204, 304) and not 100 <= status < 200
        return Response(status, reason, resp_headers, conn, has_body=has_body)

    def call(self, method: str, path: str, params: Mapping[str, ParamValue] | None = None,
             **kwargs: Any) -> Response:
        """`request`, raising `APIError` for an error status."""
        return self.request(method, path, params, **kwargs).raise_for_status()

    def get_json(self, path: str, params: Mapping[str, ParamValue] | None = None) -> Any:
        return self.call("GET", path, params).json()

    def post_json(self, path: str, params: Mapping[str, ParamValue] | None = None,
                  json: Any = None) -> Any:
        return self.call("POST", path, params, json=json).json()

    def hijack(
        self,
        method: str,
        path: str,
        params: Mapping[str, ParamValue] | None = None,
        *,
        json: Any = None,
    ) -> Hijacked:
        """Ask for `Upgrade: tcp` and hand back the raw stream after `101`."""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        resp = self.request(method, path, params, json=json, headers=headers)
        if resp.status != 101:
            resp.raise_for_status()
            resp.close()
            raise ProtocolError(f"unable to upgrade to tcp, received {resp.status}")
        return Hijacked(resp.conn, resp.content_type)


def _known_length(body: Iterable[bytes] | IO[bytes]) -> int | None:
    """The size of a regular file body (sent with Content-Length), else None (chunked)."""
    fileno = getattr(body, "fileno", None)
    if fileno is None:
        return None
    try:
        st = os.fstat(fileno())
        position = body.tell() if hasattr(body, "tell") else 0
    except (OSError, ValueError):
        return None
    return st.st_size - position if stat.S_ISREG(st.st_mode) else None


def _send_stream(sock: socket.socket, body: Iterable[bytes] | IO[bytes], chunked: bool) -> None:
    if not chunked and hasattr(body, "fileno"):
        offset = body.tell() if hasattr(body, "tell") else 0
        sock.sendfile(body, offset=offset)  # type: ignore[arg-type]
        return
    if hasattr(body, "read"):
        reader = body

        def pieces() -> Iterator[bytes]:
            while data := reader.read(_RECV_SIZE):
                yield data

        source: Iterable[bytes] = pieces()
    else:
        source = body
    for piece in source:
        if not piece:
            continue
        if chunked:
            sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            sock.sendall(piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")
