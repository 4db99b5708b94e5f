"""A webhook receiver for the alert tests: a real HTTP server on 127.0.0.1, in a thread
of the test process, that records every request.

What it answers depends on the path's first segment: `/ok/...` 200; `/flaky/...`
503 to the first two requests on that path, then 200; `/hang/...` reads the request
and never answers until `release()` (the connection stays open, so a test can check
that a client is still waiting on it).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    connection: socket.socket


@attrs.define(eq=False)
class Webhooks:
    port: int = 0
    received: list[Received] = attrs.field(factory=list)
    changed: threading.Condition = attrs.field(factory=threading.Condition)
    released: threading.Event = attrs.field(factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.changed:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, done: Callable[[list[Received]], bool],
                 timeout: float = 60) -> list[Received]:
        """The requests to `path` once `done` says they are enough (AssertionError if not)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                got = [r for r in self.received if r.path == path]
                if done(got):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"webhook {path}: got {[r.body for r in got]}")
                self.changed.wait(left)

    def release(self) -> None:
        self.released.set()


def still_open(conn: socket.socket) -> bool:
    """Has the client kept this connection open (no EOF, no reset)?"""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _handler(hooks: Webhooks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # http.server calls it by this name
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            record = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                              self.connection)
            with hooks.changed:
                hooks.received.append(record)
                earlier = sum(1 for r in hooks.received if r.path == self.path) - 1
                hooks.changed.notify_all()
            kind = self.path.split("/")[1]
            if kind == "hang":
                hooks.released.wait()
                return
            status = 503 if kind == "flaky" and earlier < 2 else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def webhook_server() -> Iterator[Webhooks]:
    hooks = Webhooks()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hooks))
    server.daemon_threads = True
    hooks.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        hooks.release()
        server.shutdown()
        server.server_close()
