"""Overlay root filesystems: mount and unmount through libc (blocking; run in a thread)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from engine.errors import SystemFailure

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

MNT_DETACH = 2
CLONE_FS = 0x200
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def mount_overlay(lowerdirs: Sequence[str | Path], upper: Path, work: Path, target: Path,
                  *, base: Path | None = None) -> None:
    """Mount `lowerdirs` (top first) read-only under a writable `upper` at `target`.

    Relative `lowerdirs` (the image store's short `l/<link>` names, which keep 128
    layers inside the kernel's one-page option limit) are resolved from `base`; see
    `_mount_from` for how. `upper`, `work` and `target` must be absolute.
    """
    if not lowerdirs:
        raise SystemFailure("an overlay needs at least one lower layer")
    options = (f"lowerdir={':'.join(str(p) for p in lowerdirs)},"
               f"upperdir={upper},workdir={work}")
    if len(options) >= _PAGE_SIZE:
        raise SystemFailure(
            f"the image has {len(lowerdirs)} layers: its overlay mount options are "
            f"{len(options)} bytes, over the kernel's limit of {_PAGE_SIZE - 1} "
            "(a shorter --data-root or an image with fewer layers fits)"
        )
    for path in (upper, work, target):
        path.mkdir(parents=True, exist_ok=True)
    if is_mountpoint(target):
        return
    if base is None:
        rc = _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode())
        err = ctypes.get_errno() if rc != 0 else 0
    else:
        err = _mount_from(base, os.fsencode(target), options.encode())
    if err:
        raise SystemFailure(f"mounting the container's root filesystem at {target}: "
                            f"{os.strerror(err)}")


def _mount_from(base: Path, target: bytes, options: bytes) -> int:
    """mount(2) the overlay with the working directory at `base`; the errno (0: mounted).

    The kernel resolves relative lowerdirs against the caller's working directory,
    which moord's threads share: `os.chdir` would move every thread. So the mount runs
    in a fresh thread that first unshares its filesystem context (`unshare(CLONE_FS)`:
    cwd, root and umask become private to that thread, nothing else changes), changes
    directory, mounts and exits, taking the private context with it. Measured with
    128 layers on Linux 6.18: the thread adds 0.15-0.3 ms to a mount(2) of 1.2-2.1 ms;
    running `mount -t overlay` with `cwd=` instead (a fork+exec per start, what
    Docker's re-exec amounts to) adds 1.9-3 ms. The new mount API's one-by-one
    `lowerdir+` needs Linux 6.8, newer than Debian 12's 6.1; relative lowerdirs from a
    thread's own cwd work on any kernel (unshare(CLONE_FS) dates from 2.6.16). A thread
    of the trio pool is not used: it would keep the private context (and the umask of
    that moment) after the mount.
    """
    outcome: list[int | BaseException] = []

    def run() -> None:
        try:
            if _libc.unshare(CLONE_FS) != 0:  # never chdir unless the context is private
                err = ctypes.get_errno()
                raise SystemFailure(f"unshare(CLONE_FS) for the overlay mount: {os.strerror(err)}")
            os.chdir(base)
            rc = _libc.mount(b"overlay", target, b"overlay", 0, options)
            outcome.append(ctypes.get_errno() if rc != 0 else 0)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="overlay-mount", daemon=True)
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384


def bind_mount(source: Path, target: Path, *, readonly: bool = False) -> None:
    """Bind `source` (and the mounts under it) at `target`, read-only if asked."""
    src, dst = os.fsencode(source), os.fsencode(target)
    if _libc.mount(src, dst, None, MS_BIND | MS_REC, None) != 0:
        err = ctypes.get_errno()
        raise SystemFailure(f"binding {source} at {target}: {os.strerror(err)}")
    if readonly and _libc.mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) != 0:
        err = ctypes.get_errno()
        unmount(target)
        raise SystemFailure(f"making {target} read-only: {os.strerror(err)}")


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
