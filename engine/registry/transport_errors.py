"""Why a registry could not be reached, in the words dockerd's Go HTTP client uses.

httpx on trio reports a refused connection as `all attempts to connect to …`, a
plain-HTTP server behind an `https://` URL as an empty SSL error, a failed lookup as
`[Errno -2] Name or service not known`. Users search the web for dockerd's words, and
scripts match them, so the cause is dug out of the exception chain and said as Go says
it: `Get "https://r:5000/v2/…": dial tcp r:5000: connect: connection refused`,
`…: dial tcp: lookup r: no such host`, `…: http: server gave HTTP response to HTTPS
client`. That last one needs a look at the server (`speaks_plain_http`): an SSL
handshake that fails on the first record says only that the peer does not speak TLS.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

#: OpenSSL's words for "the first record is not TLS" (a plain HTTP answer, or garbage)
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST",
            "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"}
#: x509 verify codes that mean "no trusted issuer" (Go: signed by unknown authority)
_UNKNOWN_AUTHORITY = {18, 19, 20, 21, 27}
_LOOKUP_FAILED = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)}

HTTP_TO_HTTPS = "http: server gave HTTP response to HTTPS client"
NOT_TLS = "tls: first record does not look like a TLS handshake"


def go_method(method: str) -> str:
    """Go's `url.Error` names the operation `Get`, `Head`, `Put`…"""
    return method[:1].upper() + method[1:].lower()


def _address(url: str) -> tuple[str, str]:
    """(host, host:port) of a URL, the port defaulted by its scheme."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    return host, f"{shown}:{port}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything behind it: causes, contexts, members of exception groups."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        item = pending.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        for nxt in (item.__cause__, item.__context__):
            if nxt is not None:
                pending.append(nxt)


def is_not_tls(exc: BaseException) -> bool:
    """Whether the TLS handshake failed because the peer's first answer was not TLS."""
    return any(isinstance(c, ssl.SSLError) and not isinstance(c, ssl.SSLCertVerificationError)
               and (c.reason or "") in _NOT_TLS for c in _causes(exc))


def cause_of(exc: BaseException, url: str) -> str:
    """What went wrong underneath `exc` (raised for a request to `url`), in Go's words."""
    host, address = _address(url)
    if isinstance(exc, httpx.ConnectTimeout):
        return f"dial tcp {address}: i/o timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "net/http: timeout awaiting response headers"
    for cause in _causes(exc):
        said = _said(cause, host, address)
        if said:
            return said
    if isinstance(exc, httpx.RemoteProtocolError):
        return "EOF"
    return str(exc) or type(exc).__name__


def _said(cause: BaseException, host: str, address: str) -> str:
    if isinstance(cause, ssl.SSLCertVerificationError):
        if cause.verify_code in _UNKNOWN_AUTHORITY:
            detail = "certificate signed by unknown authority"
        elif cause.verify_code == 10:
            detail = "certificate has expired or is not yet valid"
        elif cause.verify_code == 62:
            detail = f"certificate is not valid for {host}"
        else:
            detail = (cause.verify_message or "certificate verify failed").lower()
        return f"tls: failed to verify certificate: x509: {detail}"
    if isinstance(cause, ssl.SSLError):
        if (cause.reason or "") in _NOT_TLS:
            return NOT_TLS
        return "tls: " + (cause.reason or "handshake failure").lower().replace("_", " ")
    if isinstance(cause, socket.gaierror):
        if cause.errno in _LOOKUP_FAILED:
            return f"dial tcp: lookup {host}: no such host"
        return f"dial tcp: lookup {host}: {(cause.strerror or 'failed').lower()}"
    if isinstance(cause, ConnectionResetError):
        return f"read tcp {address}: read: connection reset by peer"
    if isinstance(cause, OSError) and cause.errno is not None and cause.errno > 0:
        if cause.errno == errno.ETIMEDOUT:
            return f"dial tcp {address}: i/o timeout"
        return f"dial tcp {address}: connect: {os.strerror(cause.errno).lower()}"
    return ""


def describe(exc: BaseException, method: str, url: str) -> str:
    """Go's `url.Error` text: `Get "<url>": <cause>`."""
    return f'{go_method(method)} "{url}": {cause_of(exc, url)}'


_PROBE_TIMEOUT = httpx.Timeout(2.0)


async def speaks_plain_http(url: str) -> bool:
    """Whether the server behind an `https://` URL answers plain HTTP on the same port:
    then a failed handshake means what Go says, `server gave HTTP response to HTTPS
    client`. Only asked after such a failure; any HTTP answer counts."""
    parts = urlsplit(url)
    plain = parts._replace(scheme="http").geturl()
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT, follow_redirects=False) as http:
            await http.get(plain)
    except httpx.HTTPError:
        return False
    return True


async def explain(exc: BaseException, method: str, url: str) -> str:
    """`describe`, after a look at the server when an `https://` handshake found no TLS."""
    if url.startswith("https://") and is_not_tls(exc) and await speaks_plain_http(url):
        return f'{go_method(method)} "{url}": {HTTP_TO_HTTPS}'
    return describe(exc, method, url)


__all__ = ["HTTP_TO_HTTPS", "NOT_TLS", "cause_of", "describe", "explain", "go_method",
           "is_not_tls", "speaks_plain_http"]
