"""Asking an authorizer (Docker's authorization plugins) about each request and answer.

The server calls `authorize` around the handler: the request (method, the URI as the
client sent it, its headers, and its body when that is JSON of at most 1 MiB) before
the handler runs, the answer (status, headers, and a JSON body) before it is sent. A
body read for the authorizer is replayed to the handler unchanged. Streams and
hijacked connections are judged on their status and headers, before anything of them
is sent (their body does not exist yet).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import attrs

from engine.api import http
from engine.api.http import BodySource, Request, Response

#: The largest body an authorizer is shown (dockerd's).
MAX_BODY = 1024 * 1024


class Authorizer(Protocol):
    async def authorize_request(self, method: str, uri: str, headers: Mapping[str, str],
                                body: bytes | None) -> None: ...

    async def authorize_response(self, method: str, uri: str, headers: Mapping[str, str],
                                 body: bytes | None, status: int,
                                 response_headers: Mapping[str, str],
                                 response_body: bytes | None) -> None: ...


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def canonical(name: str) -> str:
    """`content-type` as Go's net/http spells it: `Content-Type`."""
    return "-".join(part.capitalize() for part in name.split("-"))


@attrs.define(eq=False)
class _Replay:
    """The bytes already read, then whatever the connection still has."""

    head: bytes
    rest: BodySource | None

    async def next_chunk(self) -> bytes | None:
        if self.head:
            head, self.head = self.head, b""
            return head
        return await self.rest.next_chunk() if self.rest is not None else None


async def _peek_body(request: Request) -> bytes | None:
    """The body for the authorizer when it is JSON and small; the handler still gets it."""
    if not _is_json(request.headers.get("content-type", "")):
        return None
    chunks: list[bytes] = []
    size = 0
    source = request.body_source
    while (chunk := await source.next_chunk()) is not None:
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            request.body_source = _Replay(b"".join(chunks), source)
            return None
    body = b"".join(chunks)
    request.body_source = _Replay(body, None)
    return body or None


def _answer(response: Response) -> tuple[int, dict[str, str], bytes | None]:
    """Status, headers and (JSON) body of a response, as the authorizer sees them."""
    if isinstance(response, http.JSONResponse):
        headers = {"Content-Type": "application/json", **dict(response.headers)}
        return response.status, headers, json.dumps(response.body).encode() + b"\n"
    if isinstance(response, http.RawResponse):
        headers = {"Content-Type": response.content_type, **dict(response.headers)}
        return response.status, headers, response.body if _is_json(response.content_type) else None
    if isinstance(response, http.StreamResponse):
        return response.status, {"Content-Type": response.content_type, **dict(response.headers)}, None
    if isinstance(response, http.HijackResponse):
        return 101, {"Content-Type": response.media_type, "Upgrade": "tcp"}, None
    assert isinstance(response, http.EmptyResponse)
    return response.status, {}, None


async def authorize(authorizer: Authorizer, request: Request, uri: str,
                    handle: Callable[[Request], Awaitable[Response]]) -> Response:
    """`handle(request)` if the authorizer allows the request, and its response if it
    allows that too; a refusal raises the authorizer's error (a 403)."""
    headers = {canonical(k): v for k, v in request.headers.items()}
    body = await _peek_body(request)
    await authorizer.authorize_request(request.method, uri, headers, body)
    response = await handle(request)
    status, response_headers, response_body = _answer(response)
    await authorizer.authorize_response(request.method, uri, headers, body, status,
                                        response_headers, response_body)
    return response
