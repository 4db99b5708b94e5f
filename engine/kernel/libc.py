"""mount(2), umount2(2), unshare(2), setns(2) and syncfs(2) through libc, bound once.

Python's os module has none of these, so they go through ctypes. Each function raises
`OSError(errno, strerror)` when the call fails; callers that want their own words or
error type catch it and say what they were doing. The constants are the kernel's
(linux/mount.h, linux/sched.h).

Everything here blocks or changes the calling thread's view of the system: call it from
a worker thread (`trio.to_thread.run_sync`), never on the trio thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

MNT_DETACH = 2

CLONE_FS = 0x200
CLONE_NEWNET = 0x40000000

#: The C library of this process, shared by every binding in engine.kernel.
LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
LIBC.unshare.argtypes = [ctypes.c_int]
LIBC.setns.argtypes = [ctypes.c_int, ctypes.c_int]
LIBC.syncfs.argtypes = [ctypes.c_int]


def _check(rc: int) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def mount(source: bytes | None, target: bytes, fstype: bytes | None, flags: int,
          data: bytes | None) -> None:
    """mount(2); None passes a NULL pointer (no source, type or data)."""
    _check(LIBC.mount(source, target, fstype, flags, data))


def umount2(target: bytes, flags: int = 0) -> None:
    """umount2(2); `MNT_DETACH` in `flags` detaches lazily."""
    _check(LIBC.umount2(target, flags))


def unshare(flags: int) -> None:
    """unshare(2) for the calling thread (`CLONE_FS`, `CLONE_NEWNET`, …)."""
    _check(LIBC.unshare(flags))


def setns(fd: int, nstype: int) -> None:
    """setns(2): move the calling thread into the namespace open at `fd`."""
    _check(LIBC.setns(fd, nstype))


def syncfs(fd: int) -> None:
    """syncfs(2): flush the whole filesystem holding the open `fd` (one call instead of an
    fsync per file, for a directory tree just written)."""
    _check(LIBC.syncfs(fd))
