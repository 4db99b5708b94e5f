"""Raw HTTP/1.1 on a unix socket, for tests that must control every byte a client sends
(half a request, a body that stops, many connections at once)."""

from __future__ import annotations

import json
import socket
from pathlib import Path


def connect(path: Path, timeout: float = 30.0) -> socket.socket:
    """A blocking connection to the API socket at `path`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def read_to_end(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def error_message(answer: bytes) -> str:
    """The `message` of Docker's JSON error body in a whole answer."""
    message: str = json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"]
    return message
