"""mount(2) and umount2(2) through libc, with `mount -o`-style option strings.

Blocking: call these from a worker thread. The option words are the ones mount(8)
and Docker's local driver accept in `o=`: flag words (`ro`, `nosuid`, `bind`, …)
become mount flags, everything else (`size=64m`, `uid=1000`, `addr=…`) is passed
to the filesystem as its data string.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import attrs

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

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
    rc = _libc.mount(source.encode() if source else None, os.fsencode(target),
                     fstype.encode() if fstype else None, flags,
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(err, os.strerror(err))


def unmount(target: Path) -> None:
    """Unmount `target`; a busy mount is detached lazily; not mounted is fine."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == 16:  # EBUSY: something still has it open; let the kernel finish later
        if _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
            return
        err = ctypes.get_errno()
    if err in (22, 2):  # EINVAL / ENOENT: not a mount point (any more)
        return
    raise MountError(err, os.strerror(err))


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path` (from /proc/self/mountinfo), deepest first."""
    prefix = os.fsencode(os.path.abspath(path))
    found: list[Path] = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ", 5)
            if len(fields) <= 4:
                continue
            point = _unescape(fields[4])
            if point == prefix or point.startswith(prefix + b"/"):
                found.append(Path(os.fsdecode(point)))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _unescape(raw: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash as `\\ooo` (octal)."""
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


def is_mountpoint(path: Path) -> bool:
    return os.path.abspath(path) in {str(p) for p in mounts_under(path)}
