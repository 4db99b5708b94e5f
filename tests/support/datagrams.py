"""The receiving ends tests put in systemd's place: a notify socket, journald's socket.

The journal parser is written from the native protocol's description, independently of
engine/systemd/journal.py, so the two check each other.
"""

from __future__ import annotations

import array
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def datagram_socket(address: str | bytes, *, timeout: float | None = 60.0,
                    receive_buffer: int = 0) -> Iterator[socket.socket]:
    """A unix datagram socket bound at `address` (bytes starting with NUL: abstract)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
        sock.settimeout(timeout)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        yield sock
    finally:
        sock.close()


def parse_journal_entry(data: bytes) -> dict[str, str]:
    """Native protocol → fields (what journald does with a datagram)."""
    fields: dict[str, str] = {}
    while data:
        line_end = data.index(b"\n")
        line = data[:line_end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            data = data[line_end + 1:]
        else:
            name = line
            (size,) = struct.unpack("<Q", data[line_end + 1:line_end + 9])
            value = data[line_end + 9:line_end + 9 + size]
            assert data[line_end + 9 + size:line_end + 10 + size] == b"\n"
            data = data[line_end + 10 + size:]
        fields[name.decode()] = value.decode()
    return fields


def receive_journal_entry(sock: socket.socket) -> dict[str, str]:
    """One entry: from the datagram, or from the memfd passed with it."""
    fds = array.array("i")
    data, ancillary, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:fds.itemsize])
    if fds:
        with os.fdopen(fds[0], "rb") as memfd:
            memfd.seek(0)
            data = memfd.read()
    return parse_journal_entry(data)
