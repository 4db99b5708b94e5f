"""Unpack one layer tarball into a directory, keeping what the image needs.

The safety rules are the extractor's (`engine.tarball.extract`: names kept inside,
parents resolved in scope, nothing written through a symlink, hard links inside); a
layer keeps everything else too: ownership, modes (incl. setuid), mtimes,
`SCHILY.xattr.*` attributes (but overlayfs's own) and, as root, device nodes; a `/` in
a name is dropped and the archive's `.` entry sets the layer root. On top of that, a
layer says "deleted" or "opaque" only with OCI whiteouts, which become overlayfs
whiteouts here, and its diff ID is the hash of the uncompressed stream, trailing bytes
included. Blocking: run it in a worker thread.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import IO, Any, cast

import attrs

from engine.tarball.compression import decompressed
from engine.tarball.extract import Extractor, ExtractRules, ensure_parent, remove_any

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

#: a layer's fidelity: owners, xattrs, devices, its root entry; errors say "layer"
LAYER_RULES = ExtractRules("layer archive", scope="layer")
_COPY_CHUNK = 1024 * 1024


@attrs.frozen
class LayerStats:
    """What unpacking learnt: the layer's identity (diff ID) and sizes."""

    tar_size: int  # bytes of the uncompressed tar stream
    diff_id: str  # sha256:<hex> of the uncompressed tar stream
    content_size: int  # bytes of regular-file content written


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


@attrs.define
class _LayerExtractor(Extractor):
    """The extractor, with OCI whiteouts turned into overlayfs ones."""

    def intercept(self, m: tarfile.TarInfo, rel: str) -> bool:
        base = posixpath.basename(rel)
        if not base.startswith(WHITEOUT_PREFIX):
            return False
        parent_rel = posixpath.dirname(rel)
        if base == WHITEOUT_OPAQUE:
            self._opaque(self._dir_for_whiteout(parent_rel, m))
        elif not base.startswith(WHITEOUT_META_PREFIX):
            self._whiteout(m, parent_rel, base[len(WHITEOUT_PREFIX):])
        # else AUFS bookkeeping (.wh..wh.plnk and friends): nothing to keep
        return True

    def _opaque(self, directory: Path) -> None:
        try:
            os.setxattr(directory, OPAQUE_XATTR, b"y", follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP) and not self.is_root:
                log.warning("cannot mark %s opaque without root: %s", directory, exc)
                return
            raise

    def _whiteout(self, m: tarfile.TarInfo, parent_rel: str, name: str) -> None:
        if not name or name in (".", ".."):
            raise self.fail(f"bad whiteout {m.name!r}")
        self._dir_for_whiteout(parent_rel, m)
        target = self.resolve(posixpath.join(parent_rel, name), m.name)
        remove_any(target)
        if not self.is_root:
            log.warning("not root: cannot create the whiteout for %r", m.name)
            return
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self.chown(target, m)

    def _dir_for_whiteout(self, parent_rel: str, m: tarfile.TarInfo) -> Path:
        """The directory a whiteout applies to, resolved in scope; made if missing."""
        if not parent_rel:
            return self.dest
        parent = self.resolve(parent_rel, m.name, follow_final=True)
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            ensure_parent(self.dest, parent, m.name, self.rules.label)
            os.mkdir(parent, 0o755)
            return parent
        if not stat.S_ISDIR(st.st_mode):
            raise self.fail(f"whiteout {m.name!r} is not inside a directory")
        return parent


def unpack_layer(fileobj: IO[bytes], dest: Path) -> LayerStats:
    """Unpack the (possibly compressed) tar stream `fileobj` into `dest` (blocking).

    Raises InvalidParameter for an archive that is malformed or tries to escape `dest`;
    what was unpacked so far stays in `dest` for the caller to throw away.
    """
    extractor = _LayerExtractor.into(dest, LAYER_RULES)
    hashing = _Hashing(decompressed(fileobj))
    extractor.extract(cast(IO[bytes], hashing), then=hashing.drain)
    return LayerStats(
        tar_size=hashing.size,
        diff_id="sha256:" + hashing.digest.hexdigest(),
        content_size=extractor.content_size,
    )


def diff_id_of(path: Path) -> str:
    """The diff ID of a (possibly compressed) layer tarball, without unpacking it (blocking)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        stream = decompressed(f)
        while chunk := stream.read(_COPY_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


__all__ = [
    "LAYER_RULES", "OPAQUE_XATTR", "WHITEOUT_OPAQUE", "WHITEOUT_PREFIX", "LayerStats",
    "diff_id_of", "unpack_layer",
]
