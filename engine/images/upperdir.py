"""A container's writable layer (an overlayfs upper directory) as an OCI layer tarball.

What `docker commit` (and each step of a build) turns into a new layer. overlayfs
records deletions in the upper directory as whiteouts (a 0/0 character device) and
directories that hide everything below as opaque (`trusted.overlay.opaque=y`); in the
tarball they become OCI whiteouts (`.wh.<name>`) and `.wh..wh..opq`, which
`engine.images.unpack` turns back into overlayfs ones.

The tarball is deterministic for the same files (sorted names, PAX format, no user or
group names): a step that changes nothing the same way gives the same diff ID, which
is what a build cache keys on. Stubs that the runtime creates as mount points for the
files and file systems every container gets (`/etc/hosts`, `/proc`, …) are left out
while empty, as Docker's init layer keeps them out of commits. Blocking: run it in a
worker thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs

from engine.images.unpack import OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from engine.tarball.extract import OVERLAY_XATTR_PREFIXES

#: Mount points every container gets; skipped while they are empty stubs.
RUNTIME_STUBS = frozenset({
    "proc", "sys", "dev", "dev/pts", "dev/shm", "dev/mqueue", "dev/console",
    "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", ".dockerenv",
    "run/.containerenv",
})

_CHUNK = 1024 * 1024


@attrs.frozen
class LayerTar:
    """What writing the tarball learnt: its digest (= the diff ID: it is uncompressed)."""

    digest: str
    size: int


class HashingWriter:
    """Writes through to `out`, hashing and counting: a layer's digest as it is written."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _xattrs(path: str) -> dict[str, str]:
    """Extended attributes worth keeping (capabilities, ACLs), as PAX header values."""
    out: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _is_stub(rel: str, st: os.stat_result, full: str) -> bool:
    if rel not in RUNTIME_STUBS:
        return False
    if stat.S_ISDIR(st.st_mode):
        try:
            return not os.listdir(full)
        except OSError:
            return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _entries(root: str, rel_dir: str) -> Iterator[tuple[str, str, os.stat_result]]:
    full_dir = os.path.join(root, rel_dir) if rel_dir else root
    try:
        names = sorted(os.listdir(full_dir))
    except FileNotFoundError:  # removed while we walk (commit without pause)
        return
    for name in names:
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = os.path.join(full_dir, name)
        try:
            yield rel, full, os.lstat(full)
        except FileNotFoundError:
            continue


def walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative name, full path, lstat) of everything under `root`: depth first, names
    sorted, a directory before its contents. A stack of iterators, not recursion: a
    container can nest directories deeper than Python's recursion limit."""
    stack = [_entries(root, "")]
    while stack:
        try:
            rel, full, st = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        yield rel, full, st
        if stat.S_ISDIR(st.st_mode):
            stack.append(_entries(root, rel))


def _info(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _empty(name: str, like: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.mode = 0o644
    info.uid = info.gid = 0
    info.mtime = int(like.st_mtime)
    return info


def write_upper_tar(upper: Path, out: IO[bytes]) -> LayerTar:
    """Write the upper directory `upper` as a layer tarball to `out` (blocking)."""
    root = str(upper)
    sink = HashingWriter(out)
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      bufsize=_CHUNK) as tf:
        for rel, full, st in walk(root):
            if _is_stub(rel, st, full):
                continue
            mode = st.st_mode
            parent, _, name = rel.rpartition("/")
            if stat.S_ISCHR(mode) and st.st_rdev == 0:  # an overlayfs whiteout
                tf.addfile(_empty(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent
                                  else f"{WHITEOUT_PREFIX}{name}", st))
                continue
            add_entry(tf, rel, full, st, links)
            if stat.S_ISDIR(mode) and _is_opaque(full):
                tf.addfile(_empty(f"{rel}/{WHITEOUT_OPAQUE}", st))
    return LayerTar("sha256:" + sink.hasher.hexdigest(), sink.size)


def add_entry(tf: tarfile.TarFile, rel: str, full: str, st: os.stat_result,
              links: dict[tuple[int, int], str]) -> None:
    """One file of a tree into `tf` as `rel`, with its mode, owner, mtime and xattrs; a
    regular file seen before (its inode in `links`) as a hard link to its first name.
    Sockets are not archived (as in Docker)."""
    mode = st.st_mode
    info = _info(rel, st)
    info.pax_headers = _xattrs(full)
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
        tf.addfile(info)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type = tarfile.LNKTYPE
            info.linkname = links[key]
            tf.addfile(info)
            return
        links[key] = rel
        info.size = st.st_size
        with open(full, "rb") as f:
            tf.addfile(info, f)
    elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = (tarfile.FIFOTYPE if stat.S_ISFIFO(mode)
                     else tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tf.addfile(info)


def is_stub(rel: str, st: os.stat_result, full: str) -> bool:
    """A runtime mount-point stub (left out of commits and diffs while empty)."""
    return _is_stub(rel, st, full)


__all__ = ["RUNTIME_STUBS", "HashingWriter", "LayerTar", "add_entry", "is_stub", "walk",
           "write_upper_tar"]
