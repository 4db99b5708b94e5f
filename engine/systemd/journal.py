"""moord's log records as journal entries with fields, over journald's native protocol.

An entry is one datagram to `/run/systemd/journal/socket`: `NAME=value\\n` per field, or
`NAME\\n` + 64-bit little-endian length + value + `\\n` for a value with a newline in it.
An entry too big for a datagram goes as a sealed memfd passed with SCM_RIGHTS. A record's
`extra=` attributes named in `RECORD_FIELDS` become fields too, so
`journalctl -u moord CONTAINER_ID=<id>` finds what moord said about one container.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "moord"

#: syslog priorities of Python's levels (journald has no level between them).
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
              (logging.INFO, 6))

#: `extra=` attributes of a log record → journal field names. Docker's journald log
#: driver names a container the same way (CONTAINER_ID is the short id).
RECORD_FIELDS = {
    "container_name": "CONTAINER_NAME",
    "event": "EVENT",
    "image": "IMAGE_NAME",
    "exec_id": "EXEC_ID",
    "network_id": "NETWORK_ID",
    "volume": "VOLUME_NAME",
}

_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]*")


def under_journal(environ: Mapping[str, str], stderr_fd: int = 2,
                  socket_path: str = JOURNAL_SOCKET) -> bool:
    """Does stderr go to the journal (`$JOURNAL_STREAM` names it), or does systemd run
    moord (`$INVOCATION_ID`) on a host with journald listening?"""
    stream = environ.get("JOURNAL_STREAM", "")
    if stream:
        try:
            st = os.fstat(stderr_fd)
        except OSError:
            st = None
        if st is not None and stream == f"{st.st_dev}:{st.st_ino}":
            return True
    return bool(environ.get("INVOCATION_ID")) and os.path.exists(socket_path)


def priority(levelno: int) -> int:
    for level, prio in PRIORITIES:
        if levelno >= level:
            return prio
    return 7


def encode(fields: Mapping[str, str]) -> bytes:
    """One journal entry in the native protocol's serialization."""
    out = bytearray()
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"not a journal field name: {name!r}")
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def record_fields(record: logging.LogRecord, message: str) -> dict[str, str]:
    """The fields of one record: the message, its priority and source, and moorage's own."""
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(priority(record.levelno)),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "CODE_FILE": str(record.pathname or ""),
        "CODE_LINE": str(record.lineno or ""),
        "CODE_FUNC": str(record.funcName or ""),
        "LOGGER": str(record.name or ""),
    }
    container_id = getattr(record, "container_id", None)
    if container_id:
        fields["CONTAINER_ID"] = str(container_id)[:12]
        fields["CONTAINER_ID_FULL"] = str(container_id)
    for attr, name in RECORD_FIELDS.items():
        value = getattr(record, attr, None)
        if value not in (None, ""):
            fields[name] = str(value)
    return fields


class JournalClient:
    """Sends entries to journald; `send` raises OSError when journald can't take one."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        # never blocks: a journald that falls behind costs moord a fallback, not its loop
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                                   | socket.SOCK_NONBLOCK)

    def send(self, fields: Mapping[str, str]) -> None:
        data = encode(fields)
        try:
            self._sock.sendto(data, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_as_memfd(data)

    def _send_as_memfd(self, data: bytes) -> None:
        """Too big for a datagram: journald reads the entry from a sealed memfd."""
        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                        | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                     struct.pack("i", fd))], 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._sock.close()


class JournalHandler(logging.Handler):
    """A logging handler writing entries with fields; what journald refuses (gone, or its
    queue full) goes to stderr, which systemd also gives the journal, instead of being lost."""

    def __init__(self, client: JournalClient | None = None) -> None:
        super().__init__()
        self.client = client or JournalClient()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.client.send(record_fields(record, message))
        except OSError:
            try:
                sys.stderr.write(f"<{priority(record.levelno)}>{self.format(record)}\n")
                sys.stderr.flush()
            except Exception:
                pass
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.client.close()
        super().close()
