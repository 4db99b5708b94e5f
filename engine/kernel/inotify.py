"""inotify(7) through libc, read on trio's I/O loop.

Only the binding: an `Inotify` instance whose non-blocking fd trio waits on, the event
masks, and the decoder for what read() returns. What to watch and what to do about an
event is the caller's business (engine.logs.follow and engine.logs.rotation).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
from pathlib import Path

import attrs
import trio

from engine.kernel.libc import LIBC

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")


@attrs.frozen
class InotifyEvent:
    wd: int
    mask: int
    cookie: int
    name: str


def _bind() -> ctypes.CDLL | None:
    """The shared libc with the inotify calls typed, or None if it has none (then poll)."""
    try:
        LIBC.inotify_init1.argtypes = [ctypes.c_int]
        LIBC.inotify_init1.restype = ctypes.c_int
        LIBC.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        LIBC.inotify_add_watch.restype = ctypes.c_int
    except AttributeError:
        return None
    return LIBC


_CALLS = _bind()


def parse_events(buf: bytes) -> list[InotifyEvent]:
    """Decode what read() on an inotify fd returned (whole events only, as the kernel gives)."""
    events: list[InotifyEvent] = []
    pos = 0
    while pos + _EVENT.size <= len(buf):
        wd, mask, cookie, length = _EVENT.unpack_from(buf, pos)
        pos += _EVENT.size
        raw = buf[pos : pos + length].split(b"\0", 1)[0]
        pos += length
        events.append(InotifyEvent(wd, mask, cookie, os.fsdecode(raw)))
    return events


@attrs.define(eq=False)
class Inotify:
    """An inotify instance read through trio's I/O loop; the fd is non-blocking."""

    fd: int
    _closed: bool = False

    @classmethod
    def open(cls) -> Inotify | None:
        """A new instance, or None where inotify is not available (then poll)."""
        if _CALLS is None:
            return None
        fd = _CALLS.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            log.warning("inotify_init1: %s; polling instead", os.strerror(ctypes.get_errno()))
            return None
        return cls(fd)

    def add_watch(self, path: Path | str, mask: int) -> int:
        """Watch `path` (no blocking I/O: a path lookup in the kernel)."""
        assert _CALLS is not None
        wd = int(_CALLS.inotify_add_watch(self.fd, os.fsencode(path), mask))
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
        return wd

    async def read_events(self) -> list[InotifyEvent]:
        """Wait for events and return those queued (at least one, unless interrupted)."""
        while True:
            await trio.lowlevel.wait_readable(self.fd)
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            return parse_events(buf)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.fd)
            os.close(self.fd)
