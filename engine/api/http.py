"""Requests and responses as handlers see them, free of h11 and sockets."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import attrs

from engine.errors import InvalidParameter
from engine.filtering import parse_filters

_DECIMAL = re.compile(r"[+-]?[0-9]+")

_FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


class BodySource(Protocol):
    """Where a request's body comes from: the server feeds it lazily from the socket."""

    async def next_chunk(self) -> bytes | None: ...


@attrs.define(eq=False)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    api_version: str
    body_source: BodySource
    params: dict[str, str] = attrs.field(factory=dict)
    route: str = ""  # the matched route's pattern (`/containers/{id}/json`), for metrics

    # query helpers -------------------------------------------------------
    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's boolean query rule: absent → default; "", 0, no, false, none → False."""
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in _FALSE_WORDS

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        if not _DECIMAL.fullmatch(value):  # Go's ParseInt: no spaces, no `_`, ASCII digits
            raise InvalidParameter(f"invalid value for {name}: {value!r}: not an integer")
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise InvalidParameter(f"invalid value for {name}: {value!r}: value out of range")
        return number

    def terminal_size(self) -> tuple[int, int]:
        """A resize's `h` and `w` as dockerd reads them: unsigned 32-bit numbers, 0 when
        absent, anything else a 400 (`invalid resize height "-1"`)."""
        size = []
        for name, what in (("h", "height"), ("w", "width")):
            value = self.arg(name) or "0"
            if not (value.isascii() and value.isdigit()) or int(value) >= 2**32:
                raise InvalidParameter(f"invalid resize {what} {json.dumps(value)}")
            size.append(int(value))
        return size[0], size[1]

    def filters(self) -> dict[str, list[str]]:
        """The `filters` query argument as `{key: [values]}` (`engine.filtering`)."""
        return parse_filters(self.arg("filters"))

    # body helpers ---------------------------------------------------------
    async def body_chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.body_source.next_chunk()
            if chunk is None:
                return
            if chunk:
                yield chunk

    async def read_body(self, limit: int = 64 * 1024 * 1024) -> bytes:
        parts: list[bytes] = []
        size = 0
        while (chunk := await self.body_source.next_chunk()) is not None:
            size += len(chunk)
            if size > limit:
                raise InvalidParameter("request body is too large")
            parts.append(chunk)
        return b"".join(parts)

    async def json(self) -> Any:
        """The body as JSON; an empty body is None; malformed JSON is a 400 as Docker says it."""
        body = await self.read_body()
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise InvalidParameter(f"invalid JSON: {exc}") from None

    async def json_object(self) -> dict[str, Any]:
        value = await self.json()
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidParameter("invalid JSON: expected an object")
        return value


# responses ----------------------------------------------------------------


@attrs.frozen
class JSONResponse:
    body: Any
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class EmptyResponse:
    status: int = 204


@attrs.frozen
class RawResponse:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


class StreamWriter(Protocol):
    async def send(self, data: bytes) -> None: ...


@attrs.frozen
class StreamResponse:
    """Headers go out at once (clients block on them); `produce` then writes the body."""

    produce: Callable[[StreamWriter], Awaitable[None]]
    content_type: str = "application/json"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


class ClientGone(Exception):
    """The peer closed the connection while we were still answering."""


class HijackedStream(Protocol):
    """The raw connection after a `101 UPGRADED`: stdin in, frames out, half-close aware."""

    async def receive_some(self, max_bytes: int = 65536) -> bytes: ...

    async def send_all(self, data: bytes) -> None: ...

    async def send_eof(self) -> None: ...

    async def aclose(self) -> None:
        """Hang up on the client now (a detach), while the handler may still run."""
        ...


@attrs.frozen
class HijackResponse:
    """Take over the connection (attach, exec start). `run` owns it until it returns."""

    run: Callable[[HijackedStream], Awaitable[None]]
    media_type: str = "application/vnd.docker.raw-stream"


Response = JSONResponse | EmptyResponse | RawResponse | StreamResponse | HijackResponse
