"""Unpack one layer tarball into a directory, safely, keeping what the image needs.

Layer archives come from registries and users, so they are hostile until proven
otherwise. The rules:

* Member names are taken relative to `dest`: a leading `/` is dropped; a name whose
  `..` would climb above `dest` is refused.
* Parent directories are resolved with `engine.securejoin.resolve_in_root`: a symlink
  already unpacked inside `dest` is followed *in scope* (`lib -> /usr/lib` sends
  `lib/x` to `dest/usr/lib/x`), never to the host.
* The final component is never followed: whatever is there (file, symlink, directory
  that the member does not merge with) is removed first, and regular files are created
  with `O_CREAT|O_EXCL|O_NOFOLLOW`. Nothing is ever written through a symlink.
* Symlinks may point anywhere: their targets mean something only inside the container.
* Hard link targets must resolve inside `dest`, and must exist.
* Device nodes and fifos are made only when running as root.

tarfile parses; every filesystem write is ours (no `extract`/`extractall`).
Ownership, modes (incl. setuid, set after chown), mtimes and `SCHILY.xattr.*`
attributes are kept, except overlayfs's own (`trusted.overlay.*`, `user.overlay.*`):
a layer says "deleted" or "opaque" only with OCI whiteouts, which become overlayfs
whiteouts. Blocking: run it in a worker thread.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import importlib
import logging
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any, cast

import attrs

from engine.errors import InvalidParameter
from engine.securejoin import ScopeError, resolve_in_root

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_COPY_CHUNK = 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


@attrs.frozen
class LayerStats:
    """What unpacking learnt: the layer's identity (diff ID) and sizes."""

    tar_size: int  # bytes of the uncompressed tar stream
    diff_id: str  # sha256:<hex> of the uncompressed tar stream
    content_size: int  # bytes of regular-file content written


# input: decompression and hashing ----------------------------------------------


class _Prefixed:
    """A reader that first returns bytes already peeked from `inner`."""

    def __init__(self, prefix: bytes, inner: IO[bytes]) -> None:
        self._prefix = prefix
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data = self._prefix + self._inner.read()
                self._prefix = b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._inner.read(size - len(data))
            return data
        return self._inner.read(size)

    def readable(self) -> bool:
        return True


class _Hashing:
    """Counts and hashes everything read through it: that is the diff ID."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._inner.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_COPY_CHUNK):
            pass


def _read_exactly(f: IO[bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def decompressed(fileobj: IO[bytes]) -> Any:
    """`fileobj` as an uncompressed stream, whatever of tar/gzip/zstd/bzip2/xz it holds."""
    head = _read_exactly(fileobj, 6)
    raw = cast(IO[bytes], _Prefixed(head, fileobj))
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(_ZSTD_MAGIC):
        try:
            zstandard = importlib.import_module("zstandard")
        except ImportError:
            raise InvalidParameter(
                "the layer is zstd-compressed, but this moorage has no zstd support "
                "(install the 'zstandard' Python package)"
            ) from None
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(raw)
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(raw)
    return raw


# paths ---------------------------------------------------------------------------


def _member_path(name: str) -> str:
    """The member's path relative to dest, lexically cleaned; `..` escapes are refused."""
    cleaned = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise InvalidParameter(f"invalid layer archive: member {name!r} is outside the layer")
    return "" if cleaned == "." else cleaned


def _resolve(dest: Path, rel: str, member: str) -> Path:
    """Where `rel` lands inside dest: parents resolved in scope, final component not followed."""
    try:
        return resolve_in_root(dest, rel, follow_final=False)
    except ScopeError as exc:
        raise InvalidParameter(f"invalid layer archive: member {member!r}: {exc}") from None


def remove_any(path: Path) -> None:
    """Remove whatever is at `path` (not following a symlink there)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def ensure_parent(dest: Path, target: Path, member: str, label: str = "layer archive") -> None:
    """Create missing parent directories of `target` (0755, root-owned, as Docker does);
    a parent that exists but is not a directory refuses the member. `target` has been
    resolved inside `dest`, so its existing part holds no symlinks."""
    parent = target.parent
    try:
        st = os.lstat(parent)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(f"invalid {label}: member {member!r}: parent is not a directory")
        return
    current = dest
    for part in parent.relative_to(dest).parts:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise InvalidParameter(
                    f"invalid {label}: member {member!r}: parent is not a directory"
                ) from None


# metadata ----------------------------------------------------------------------


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """The member's extended attributes, minus overlayfs's own: a layer says "opaque" or
    "deleted" with OCI whiteouts, never by planting redirects or origins for overlayfs."""
    out = []
    for key, value in member.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        name = key[len("SCHILY.xattr."):]
        if name.startswith(OVERLAY_XATTR_PREFIXES):
            log.debug("dropping overlayfs attribute %s of %r", name, member.name)
            continue
        out.append((name, value.encode("utf-8", "surrogateescape")))
    return out


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime_ns = int(float(member.mtime) * 1_000_000_000)
    atime = member.pax_headers.get("atime")
    try:
        atime_ns = int(float(atime) * 1_000_000_000) if atime else mtime_ns
    except ValueError:
        atime_ns = mtime_ns
    return atime_ns, mtime_ns


@attrs.define
class _Unpacker:
    dest: Path
    is_root: bool = attrs.field(factory=lambda: os.geteuid() == 0)
    content_size: int = 0
    dirs: list[tuple[str, tarfile.TarInfo]] = attrs.field(factory=list)
    warned_chown: bool = False

    # one member ------------------------------------------------------------
    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _member_path(m.name)
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(m, rel, base)
            return
        if rel == "":
            if not m.isdir():
                raise InvalidParameter(
                    f"invalid layer archive: member {m.name!r} would replace the layer root"
                )
            self._metadata(self.dest, m, chmod=False, utime=False)
            self.dirs.append(("", m))
            return
        target = _resolve(self.dest, rel, m.name)
        ensure_parent(self.dest, target, m.name)
        link_source = self._hardlink_source(m, target) if m.islnk() else None
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            remove_any(target)
        if m.isreg():
            self._regular(tf, m, target)
        elif m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(target, 0o700)
            self._metadata(target, m, chmod=False, utime=False)
            self.dirs.append((rel, m))
            return
        elif m.issym():
            os.symlink(m.linkname, target)
        elif link_source is not None:
            os.link(link_source, target, follow_symlinks=False)
            return  # the inode keeps the metadata of its first name
        elif m.ischr() or m.isblk() or m.isfifo():
            if not self._special(m, target):
                return
        else:
            log.debug("skipping layer member %r of tar type %r", m.name, m.type)
            return
        self._metadata(target, m)

    def _regular(self, tf: tarfile.TarFile, m: tarfile.TarInfo, target: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            src = tf.extractfile(m)
            if src is not None:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
                    self.content_size += len(chunk)

    def _hardlink_source(self, m: tarfile.TarInfo, target: Path) -> Path:
        """The existing file a hard link member names; it must lie inside dest."""
        cleaned = posixpath.normpath(m.linkname.lstrip("/")) if m.linkname.strip("/") else ""
        if not cleaned or cleaned == "." or cleaned == ".." or cleaned.startswith("../"):
            raise InvalidParameter(
                f"invalid layer archive: hard link {m.name!r} points outside the layer "
                f"({m.linkname!r})"
            )
        source = _resolve(self.dest, cleaned, m.name)
        try:
            st = os.lstat(source)
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidParameter(
                f"invalid layer archive: hard link {m.name!r}: target {m.linkname!r} not found"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(
                f"invalid layer archive: hard link {m.name!r} points to a directory"
            )
        if source == target:
            raise InvalidParameter(f"invalid layer archive: hard link {m.name!r} points to itself")
        return source

    def _special(self, m: tarfile.TarInfo, target: Path) -> bool:
        if not self.is_root:
            log.debug("not root: skipping device/fifo %r", m.name)
            return False
        kind = stat.S_IFIFO if m.isfifo() else stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        try:
            os.mknod(target, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        except PermissionError:
            log.debug("no permission for mknod: skipping %r", m.name)
            return False
        return True

    def _whiteout(self, m: tarfile.TarInfo, rel: str, base: str) -> None:
        parent_rel = posixpath.dirname(rel)
        if base == WHITEOUT_OPAQUE:
            parent = self._dir_for_whiteout(parent_rel, m)
            try:
                os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOTSUP) and not self.is_root:
                    log.warning("cannot mark %s opaque without root: %s", parent, exc)
                    return
                raise
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk and friends): nothing to keep
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name in (".", ".."):
            raise InvalidParameter(f"invalid layer archive: bad whiteout {m.name!r}")
        self._dir_for_whiteout(parent_rel, m)
        target = _resolve(self.dest, posixpath.join(parent_rel, name), m.name)
        remove_any(target)
        if not self.is_root:
            log.warning("not root: cannot create the whiteout for %r", m.name)
            return
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self._chown(target, m)

    def _dir_for_whiteout(self, parent_rel: str, m: tarfile.TarInfo) -> Path:
        """The directory a whiteout applies to, resolved in scope; made if missing."""
        if not parent_rel:
            return self.dest
        try:
            parent = resolve_in_root(self.dest, parent_rel)
        except ScopeError as exc:
            raise InvalidParameter(f"invalid layer archive: member {m.name!r}: {exc}") from None
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            ensure_parent(self.dest, parent, m.name)
            os.mkdir(parent, 0o755)
            return parent
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(
                f"invalid layer archive: whiteout {m.name!r} is not inside a directory"
            )
        return parent

    # metadata ----------------------------------------------------------------
    def _chown(self, path: Path, m: tarfile.TarInfo) -> None:
        try:
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
        except PermissionError:
            if self.is_root:
                raise
            if not self.warned_chown:
                log.warning("not root: layer files keep the unpacking user's ownership")
                self.warned_chown = True

    def _metadata(self, path: Path, m: tarfile.TarInfo, *, chmod: bool = True,
                  utime: bool = True) -> None:
        self._chown(path, m)
        if chmod and not m.issym():
            # after chown: chown clears setuid/setgid bits
            os.chmod(path, m.mode & 0o7777, follow_symlinks=False)
        for key, value in _xattrs(m):
            try:
                os.setxattr(path, key, value, follow_symlinks=False)
            except OSError as exc:
                # as Docker: not every filesystem (or a symlink) takes every namespace
                if exc.errno in (errno.ENOTSUP, errno.EPERM):
                    log.debug("xattr %s on %s not kept: %s", key, path, exc)
                    continue
                raise
        if utime:
            os.utime(path, ns=_times(m), follow_symlinks=False)

    def finish(self) -> None:
        """Directory modes and times last: writing into a directory changes its mtime.

        Paths are resolved again, in scope: a later member may have replaced a parent
        with a symlink, and we must not follow it out.
        """
        for rel, m in reversed(self.dirs):
            path = self.dest if not rel else _resolve(self.dest, rel, m.name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            os.chmod(path, m.mode & 0o7777, follow_symlinks=False)
            os.utime(path, ns=_times(m), follow_symlinks=False)


def unpack_layer(fileobj: IO[bytes], dest: Path) -> LayerStats:
    """Unpack the (possibly compressed) tar stream `fileobj` into `dest` (blocking).

    Raises InvalidParameter for an archive that is malformed or tries to escape `dest`;
    what was unpacked so far stays in `dest` for the caller to throw away.
    """
    dest = Path(os.path.abspath(dest))
    dest.mkdir(parents=True, exist_ok=True)
    stream = decompressed(fileobj)
    hashing = _Hashing(stream)
    unpacker = _Unpacker(dest)
    current = "(archive header)"
    try:
        with tarfile.open(fileobj=hashing, mode="r|") as tf:  # type: ignore[call-overload]
            for m in tf:
                current = m.name
                unpacker.member(tf, m)
        unpacker.finish()
        hashing.drain()
    except InvalidParameter:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise InvalidParameter(f"invalid layer archive near member {current!r}: {exc}") from None
    except ValueError as exc:  # e.g. NUL in a name
        raise InvalidParameter(f"invalid layer archive: member {current!r}: {exc}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
            raise
        with contextlib.suppress(Exception):
            log.debug("unpack of %r failed", current, exc_info=True)
        raise InvalidParameter(
            f"invalid layer archive: cannot unpack member {current!r}: {exc.strerror or exc}"
        ) from None
    return LayerStats(
        tar_size=hashing.size,
        diff_id="sha256:" + hashing.digest.hexdigest(),
        content_size=unpacker.content_size,
    )


def diff_id_of(path: Path) -> str:
    """The diff ID of a (possibly compressed) layer tarball, without unpacking it (blocking)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        stream = decompressed(f)
        while chunk := stream.read(_COPY_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


__all__ = ["LayerStats", "decompressed", "diff_id_of", "ensure_parent", "remove_any", "unpack_layer"]
