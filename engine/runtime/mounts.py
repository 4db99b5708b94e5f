"""Overlay root filesystems: mount and unmount through libc (blocking; run in a thread)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from engine.errors import SystemFailure

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MNT_DETACH = 2
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def mount_overlay(lowerdirs: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount `lowerdirs` (top first) read-only under a writable `upper` at `target`."""
    if not lowerdirs:
        raise SystemFailure("an overlay needs at least one lower layer")
    options = (f"lowerdir={':'.join(str(p) for p in lowerdirs)},"
               f"upperdir={upper},workdir={work}")
    if len(options) >= _PAGE_SIZE:
        raise SystemFailure(
            f"overlay mount options are {len(options)} bytes, over the kernel's limit of "
            f"{_PAGE_SIZE - 1}: the image has too many layers for this data root path"
        )
    for path in (upper, work, target):
        path.mkdir(parents=True, exist_ok=True)
    if is_mountpoint(target):
        return
    rc = _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise SystemFailure(f"mounting the container's root filesystem at {target}: "
                            f"{os.strerror(err)}")


def unmount(target: Path) -> None:
    """Unmount `target` if it is mounted; a busy mount is detached lazily."""
    if not is_mountpoint(target):
        return
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == 16:  # EBUSY: something still holds it; let the kernel finish later
        if _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
            return
        err = ctypes.get_errno()
    if err in (22, 2):  # EINVAL / ENOENT: not mounted after all
        return
    raise SystemFailure(f"unmounting {target}: {os.strerror(err)}")


def is_mountpoint(path: Path) -> bool:
    """True if `path` is a mount point in this mount namespace (by /proc/self/mountinfo)."""
    wanted = os.fsencode(os.path.abspath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ", 5)
            if len(fields) > 4 and _unescape(fields[4]) == wanted:
                return True
    return False


def _unescape(raw: bytes) -> bytes:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 3 < len(raw) + 0 and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)
