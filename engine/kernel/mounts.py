"""mount(2) the way mount(8) does it, unmounting, and the mount table.

Blocking: call these from a worker thread. The option words are the ones mount(8)
and Docker's local driver accept in `o=`: flag words (`ro`, `nosuid`, `bind`, …)
become mount flags, everything else (`size=64m`, `uid=1000`, `addr=…`) is passed
to the filesystem as its data string. The local volume driver mounts with these, and
the engine's runtime (engine.runtime.mounts) unmounts and reads the table with them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import attrs

from engine.kernel import libc
from engine.kernel.libc import (
    MNT_DETACH,
    MS_BIND,
    MS_DIRSYNC,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

# word -> (clear these flags?, flag bits)
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID), "nosuid": (False, MS_NOSUID),
    "dev": (True, MS_NODEV), "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC), "noexec": (False, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS), "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK),
    "atime": (True, MS_NOATIME), "noatime": (False, MS_NOATIME),
    "diratime": (True, MS_NODIRATIME), "nodiratime": (False, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME), "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME), "nostrictatime": (True, MS_STRICTATIME),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC),
    "remount": (False, MS_REMOUNT),
}
_PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}


class MountError(OSError):
    """A mount or unmount failed; `strerror` is the kernel's reason."""


@attrs.frozen
class MountOptions:
    """An `o=` string split into mount flags, a propagation change and filesystem data."""

    flags: int = 0
    propagation: int = 0
    data: str = ""

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_options(text: str) -> MountOptions:
    """`"bind,ro,uid=1"` → flags MS_BIND|MS_RDONLY, data `"uid=1"` (later words win)."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        if word in _FLAGS:
            clear, bits = _FLAGS[word]
            flags = flags & ~bits if clear else flags | bits
        elif word in _PROPAGATION:
            propagation = _PROPAGATION[word]
        else:
            data.append(word)
    return MountOptions(flags, propagation, ",".join(data))


def mount(source: str, target: Path, fstype: str, options: MountOptions) -> None:
    """Mount like mount(8): a read-only bind needs a second, remounting call."""
    flags = options.flags
    _call(source, target, fstype, flags & ~MS_REMOUNT if options.is_bind else flags, options.data)
    try:
        if options.is_bind and flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):
            _call("", target, "", MS_REMOUNT | MS_BIND | (flags & ~(MS_REC | MS_REMOUNT)), "")
        if options.propagation:
            _call("", target, "", options.propagation, "")
    except MountError:
        unmount(target)
        raise


def _call(source: str, target: Path, fstype: str, flags: int, data: str) -> None:
    try:
        libc.mount(source.encode() if source else None, os.fsencode(target),
                   fstype.encode() if fstype else None, flags, data.encode() if data else None)
    except OSError as exc:
        raise MountError(exc.errno, exc.strerror) from None


def unmount(target: Path) -> None:
    """Unmount `target`; a busy mount is detached lazily; not mounted is fine."""
    path = os.fsencode(target)
    try:
        try:
            libc.umount2(path)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            # something still has it open; let the kernel finish later
            libc.umount2(path, MNT_DETACH)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
            return
        raise MountError(exc.errno, exc.strerror) from None


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path` (from /proc/self/mountinfo), deepest first."""
    prefix = os.fsencode(os.path.abspath(path))
    found = [Path(os.fsdecode(point)) for point in _mount_points()
             if point == prefix or point.startswith(prefix + b"/")]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def is_mountpoint(path: Path) -> bool:
    """True if `path` is a mount point in this mount namespace."""
    wanted = os.fsencode(os.path.abspath(path))
    return any(point == wanted for point in _mount_points())


def _mount_points() -> list[bytes]:
    """Every mount point of /proc/self/mountinfo, unescaped, in the table's order."""
    points: list[bytes] = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ", 5)
            if len(fields) > 4:
                points.append(_unescape(fields[4]))
    return points


def _unescape(raw: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash as `\\ooo` (octal)."""
    if b"\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and raw[i + 1 : i + 4].isdigit() and len(raw[i + 1 : i + 4]) == 3:
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)
