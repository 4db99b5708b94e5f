"""Registry transport failures in dockerd's (Go's) words, from real sockets on loopback
where a socket can show it, from built exceptions where only a resolver or a CA could."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trio

from engine.registry import transport_errors as te


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def plain_http() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _failure(url: str) -> httpx.HTTPError:
    async with httpx.AsyncClient(timeout=5) as http:
        try:
            await http.get(url)
        except httpx.HTTPError as exc:
            return exc
    raise AssertionError(f"{url} answered")


async def test_https_to_a_plain_http_server(plain_http: int) -> None:
    url = f"https://127.0.0.1:{plain_http}/v2/x/manifests/1"
    exc = await _failure(url)
    assert te.is_not_tls(exc)
    assert await te.explain(exc, "GET", url) == \
        f'Get "{url}": http: server gave HTTP response to HTTPS client'
    assert te.describe(exc, "HEAD", url) == \
        f'Head "{url}": tls: first record does not look like a TLS handshake'


async def test_connection_refused() -> None:
    port = _closed_port()
    for scheme in ("http", "https"):
        url = f"{scheme}://127.0.0.1:{port}/v2/"
        exc = await _failure(url)
        assert await te.explain(exc, "GET", url) == \
            f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'


def _wrapped(cause: BaseException) -> httpx.ConnectError:
    """What httpx on trio raises: its error, with the cause behind it (in a group)."""
    try:
        try:
            raise ExceptionGroup("all attempts to connect failed", [cause])
        except ExceptionGroup as group:
            raise OSError("all attempts to connect failed") from group
    except OSError as inner:
        error = httpx.ConnectError(str(inner))
        error.__cause__ = inner
        return error


def test_lookup_failures() -> None:
    no_host = _wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert te.describe(no_host, "GET", "https://nosuch.invalid/v2/") == \
        'Get "https://nosuch.invalid/v2/": dial tcp: lookup nosuch.invalid: no such host'
    again = _wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert te.cause_of(again, "https://r.example:5000/v2/") == \
        "dial tcp: lookup r.example: temporary failure in name resolution"


def test_other_causes() -> None:
    url = "https://[::1]:5000/v2/"
    unreachable = _wrapped(OSError(113, "No route to host"))
    assert te.cause_of(unreachable, url) == "dial tcp [::1]:5000: connect: no route to host"
    assert te.cause_of(httpx.ConnectTimeout("x"), "http://r:80/") == "dial tcp r:80: i/o timeout"
    assert te.cause_of(httpx.ReadTimeout("x"), url) == \
        "net/http: timeout awaiting response headers"
    assert te.cause_of(_wrapped(ConnectionResetError(104, "reset")), "https://r/") == \
        "read tcp r:443: read: connection reset by peer"
    unknown_ca = ssl.SSLCertVerificationError(1, "certificate verify failed")
    unknown_ca.verify_code = 19
    unknown_ca.verify_message = "self-signed certificate in certificate chain"
    assert te.cause_of(_wrapped(unknown_ca), url) == \
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    assert te.go_method("DELETE") == "Delete"


async def test_the_probe_says_no_for_a_closed_port() -> None:
    assert not await te.speaks_plain_http(f"https://127.0.0.1:{_closed_port()}/v2/")
    with trio.fail_after(10):
        assert not await te.speaks_plain_http("https://127.0.0.1:1/")
