"""A Docker plugin for tests: HTTP on a unix socket, served from a thread.

`answer(method, body)` returns (status, JSON object) for `POST /method`; every request
is recorded (method, headers, body) so a test can check what moord sent. Used by the
unit tests of the plugin client (also over TCP, as a spec file may name) and by
integration tests' own plugins (authorization,
network), which are real servers that moord reaches through its socket directory.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

Answer = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    answer: Answer
    requests: list[tuple[str, dict[str, str], dict[str, Any]]]


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    answer: Answer
    requests: list[tuple[str, dict[str, str], dict[str, Any]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server | _TCPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else {}
        method = self.path.lstrip("/")
        self.server.requests.append((method, dict(self.headers.items()), body))
        status, doc = self.server.answer(method, body)
        out = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "plugin-client"  # a unix peer has no (host, port)


@contextmanager
def _serving(server: _Server | _TCPServer, answer: Answer) -> Iterator[Any]:
    server.answer = answer
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_plugin(path: Path, answer: Answer) -> Iterator[_Server]:
    """Serve `answer` on the unix socket `path` until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    try:
        with _serving(_Server(str(path), _Handler), answer) as server:
            yield server
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def serve_plugin_tcp(answer: Answer) -> Iterator[_TCPServer]:
    """Serve `answer` on 127.0.0.1 (a free port: `server.server_address`)."""
    with _serving(_TCPServer(("127.0.0.1", 0), _Handler), answer) as server:
        yield server
