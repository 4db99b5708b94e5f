"""Extract a tar stream into a directory, safely: the one extractor moord has.

Archives come from registries, clients and containers, so they are hostile until
proven otherwise. The rules, whoever sent the archive:

* Member names are taken relative to the destination. A name whose `..` would climb
  above it is refused; a leading `/` is dropped, or refused if the rules say so.
* Parent directories are resolved with `engine.securejoin.resolve_in_root`: a symlink
  already extracted is followed *in scope* (`lib -> /usr/lib` sends `lib/x` to
  `dest/usr/lib/x`), never to the host.
* The final component is never followed: whatever is there (file, symlink, directory
  that the member does not merge with) is removed first, and regular files are created
  with `O_CREAT|O_EXCL|O_NOFOLLOW`. Nothing is ever written through a symlink.
* Symlinks may point anywhere: their targets mean something only inside the tree.
* Hard link targets must resolve inside the destination, exist, and not be directories.
* Device nodes and fifos are made only when the rules allow them and moord is root.
* Modes (incl. setuid, set after chown), mtimes and atimes are kept; owners and
  `SCHILY.xattr.*` attributes when the rules say so, never overlayfs's own attributes.
  Directory modes and times are set last: writing into a directory changes its mtime.

tarfile parses; every filesystem write is ours (no `extract`/`extractall`). What differs
between an image layer, a build context, an `ADD` archive and a `docker cp` upload is
an `ExtractRules`; a layer's whiteouts are a subclass's `intercept`. Blocking: run it in
a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

import attrs

from engine.errors import InvalidParameter
from engine.securejoin import ScopeError, resolve_in_root
from engine.tarball.compression import decompressed

log = logging.getLogger(__name__)

#: overlayfs keeps its own state in these; an archive never gets to set them
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_COPY_CHUNK = 1024 * 1024


@attrs.frozen
class ExtractRules:
    """What one kind of archive keeps; the defaults are a layer's full fidelity."""

    label: str  # names the archive in errors: "invalid <label>: …"
    scope: str = ""  # what an escaping member would leave ("outside the <scope>"); "": label
    absolute_names: bool = True  # a leading "/" is dropped (Docker's Untar); False: refused
    owners: bool = True  # chown to the archive's uid/gid; False: moord's, reported instead
    xattrs: bool = True  # keep `SCHILY.xattr.*` attributes
    devices: bool = True  # make device nodes and fifos (as root only)
    root_entry: bool = True  # the archive's "." sets the destination's owner, mode, times

    @classmethod
    def foreign(cls, label: str, *, absolute_names: bool = False) -> ExtractRules:
        """An archive from a client or a container (a build context, `ADD`, `docker cp`):
        the files belong to moord (the archive's owners are reported, for the caller to
        apply), no device nodes, no extended attributes, the destination left as it is."""
        return cls(label, absolute_names=absolute_names, owners=False, xattrs=False,
                   devices=False, root_entry=False)

    @property
    def outside(self) -> str:
        return self.scope or self.label


@attrs.frozen
class Owner:
    """The uid/gid a tar member named (reported when the rules do not apply them)."""

    uid: int
    gid: int


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


def ensure_parent(dest: Path, target: Path, member: str, label: str) -> None:
    """Create missing parent directories of `target` (0755, root-owned, as Docker does);
    a parent that exists but is not a directory refuses the member. `target` has been
    resolved inside `dest`, so its existing part holds no symlinks."""
    parent = target.parent
    try:
        # dest itself is the caller's, trusted; it may be a running container's
        # `/proc/<pid>/root`, a link the kernel follows into the container's root
        st = os.stat(parent) if parent == dest else os.lstat(parent)
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
    """(atime, mtime) in ns: the PAX atime if the archive has one, else the mtime."""
    mtime_ns = int(float(member.mtime) * 1_000_000_000)
    atime = member.pax_headers.get("atime")
    try:
        atime_ns = int(float(atime) * 1_000_000_000) if atime else mtime_ns
    except ValueError:
        atime_ns = mtime_ns
    return atime_ns, mtime_ns


def _relative(name: str) -> str:
    """`name` lexically cleaned, relative; "" for the root; may start with "../"."""
    return posixpath.normpath(name.lstrip("/")) if name.strip("/") else ""


def _escapes(cleaned: str) -> bool:
    return cleaned == ".." or cleaned.startswith("../")


@attrs.define
class Extractor:
    """Writes members one by one; directory metadata is set last (children touch it)."""

    dest: Path
    rules: ExtractRules
    is_root: bool = attrs.field(factory=lambda: os.geteuid() == 0)
    content_size: int = 0  # bytes of regular-file content written
    owners: dict[str, Owner] = attrs.field(factory=dict)  # by path in dest, unless applied
    dirs: list[tuple[str, tarfile.TarInfo]] = attrs.field(factory=list)
    warned_chown: bool = False

    @classmethod
    def into(cls, dest: Path, rules: ExtractRules) -> Self:
        """An extractor writing into `dest` (made if missing)."""
        dest = Path(os.path.abspath(dest))
        dest.mkdir(parents=True, exist_ok=True)
        return cls(dest, rules)

    def fail(self, detail: str) -> InvalidParameter:
        return InvalidParameter(f"invalid {self.rules.label}: {detail}")

    def extract(self, stream: IO[bytes], *, then: Callable[[], None] | None = None) -> None:
        """Extract the plain tar `stream`, then run `then` (with the same error handling).

        Raises InvalidParameter for an archive that is malformed or tries to escape;
        what was written so far stays in `dest` for the caller to throw away. A full
        disk or a read-only one is raised as it is (moord's trouble, not the archive's).
        """
        current = "(archive header)"
        label = self.rules.label
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for m in tf:
                    current = m.name
                    self.member(tf, m)
            self.finish()
            if then is not None:
                then()
        except InvalidParameter:
            raise
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise InvalidParameter(f"invalid {label} near member {current!r}: {exc}") from None
        except ValueError as exc:  # e.g. NUL in a name
            raise InvalidParameter(f"invalid {label}: member {current!r}: {exc}") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
                raise
            with contextlib.suppress(Exception):
                log.debug("extracting %r failed", current, exc_info=True)
            raise InvalidParameter(
                f"invalid {label}: cannot unpack member {current!r}: {exc.strerror or exc}"
            ) from None

    # paths ---------------------------------------------------------------------
    def member_path(self, name: str) -> str:
        """The member's path relative to dest, lexically cleaned ("" for the root)."""
        if name.startswith("/") and not self.rules.absolute_names:
            raise self.fail(f"member {name!r} has an absolute name")
        cleaned = _relative(name)
        if _escapes(cleaned):
            raise self.fail(f"member {name!r} is outside the {self.rules.outside}")
        return "" if cleaned == "." else cleaned

    def resolve(self, rel: str, name: str, *, follow_final: bool = False) -> Path:
        """Where `rel` lands inside dest: parents resolved in scope, the final component
        not followed unless asked."""
        try:
            return resolve_in_root(self.dest, rel, follow_final=follow_final)
        except ScopeError as exc:
            raise self.fail(f"member {name!r}: {exc}") from None

    def _link_source(self, m: tarfile.TarInfo, target: Path) -> Path:
        """The existing file a hard link member names; it must lie inside dest."""
        cleaned = _relative(m.linkname)
        if (m.linkname.startswith("/") and not self.rules.absolute_names) \
                or cleaned in ("", ".") or _escapes(cleaned):
            raise self.fail(f"hard link {m.name!r} points outside the {self.rules.outside} "
                            f"({m.linkname!r})")
        source = self.resolve(cleaned, m.name)
        try:
            st = os.lstat(source)
        except (FileNotFoundError, NotADirectoryError):
            raise self.fail(f"hard link {m.name!r}: target {m.linkname!r} not found") from None
        if stat.S_ISDIR(st.st_mode):
            raise self.fail(f"hard link {m.name!r} points to a directory")
        if source == target:
            raise self.fail(f"hard link {m.name!r} points to itself")
        return source

    # one member ----------------------------------------------------------------
    def intercept(self, m: tarfile.TarInfo, rel: str) -> bool:
        """Handle a member in a way of the subclass's own (a layer's whiteouts)?"""
        return False

    def _makes(self, m: tarfile.TarInfo) -> bool:
        if m.isreg() or m.isdir() or m.issym() or m.islnk():
            return True
        return self.rules.devices and (m.ischr() or m.isblk() or m.isfifo())

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = self.member_path(m.name)
        if self.intercept(m, rel):
            return
        if rel == "":
            self._root(m)
            return
        if not self._makes(m):  # other tar types (GNU volume headers, …) carry no file
            log.debug("skipping %s member %r of tar type %r", self.rules.label, m.name, m.type)
            return
        target = self.resolve(rel, m.name)
        ensure_parent(self.dest, target, m.name, self.rules.label)
        link_source = self._link_source(m, target) if m.islnk() else None
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
            self._owner_and_xattrs(target, m)
            self.dirs.append((rel, m))
            return
        elif m.issym():
            os.symlink(m.linkname, target)
        elif link_source is not None:
            os.link(link_source, target, follow_symlinks=False)
            return  # the inode keeps the metadata of its first name
        elif not self._special(m, target):
            return
        self._metadata(target, m)

    def _root(self, m: tarfile.TarInfo) -> None:
        """The archive's entry for the destination itself."""
        if not self.rules.root_entry:
            return  # the destination is the caller's, its metadata too
        if not m.isdir():
            raise self.fail(f"member {m.name!r} would replace the {self.rules.outside} root")
        self._owner_and_xattrs(self.dest, m)
        self.dirs.append(("", m))

    def _regular(self, tf: tarfile.TarFile, m: tarfile.TarInfo, target: Path) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            src = tf.extractfile(m)
            if src is not None:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
                    self.content_size += len(chunk)

    def _special(self, m: tarfile.TarInfo, target: Path) -> bool:
        """A device node or fifo, made only as root; False when skipped."""
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

    # metadata ------------------------------------------------------------------
    def chown(self, path: Path, m: tarfile.TarInfo) -> None:
        try:
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
        except PermissionError:
            if self.is_root:
                raise
            if not self.warned_chown:
                log.warning("not root: extracted files keep the extracting user's ownership")
                self.warned_chown = True

    def _owner_and_xattrs(self, path: Path, m: tarfile.TarInfo) -> None:
        if self.rules.owners:
            self.chown(path, m)
        else:
            self.owners[path.relative_to(self.dest).as_posix()] = Owner(m.uid, m.gid)
        if not self.rules.xattrs:
            return
        for key, value in _xattrs(m):
            try:
                os.setxattr(path, key, value, follow_symlinks=False)
            except OSError as exc:
                # as Docker: not every filesystem (or a symlink) takes every namespace
                if exc.errno in (errno.ENOTSUP, errno.EPERM):
                    log.debug("xattr %s on %s not kept: %s", key, path, exc)
                    continue
                raise

    def _metadata(self, path: Path, m: tarfile.TarInfo) -> None:
        self._owner_and_xattrs(path, m)
        if not m.issym():
            # after chown: chown clears setuid/setgid bits
            os.chmod(path, m.mode & 0o7777, follow_symlinks=False)
        os.utime(path, ns=_times(m), follow_symlinks=False)

    def finish(self) -> None:
        """Directory modes and times, last.

        Paths are resolved again, in scope: a later member may have replaced a parent
        with a symlink, and we must not follow it out.
        """
        for rel, m in reversed(self.dirs):
            path = self.dest if not rel else self.resolve(rel, m.name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            os.chmod(path, m.mode & 0o7777, follow_symlinks=False)
            os.utime(path, ns=_times(m), follow_symlinks=False)


def extract_tar(fileobj: IO[bytes], dest: Path, rules: ExtractRules) -> dict[str, Owner]:
    """Extract the (possibly compressed) tar stream into `dest` by `rules` (blocking).

    Returns the uid/gid each member named, by its path relative to `dest`, when the
    rules leave ownership to the caller (`ADD` and `docker cp -a` apply them).
    """
    extractor = Extractor.into(dest, rules)
    extractor.extract(decompressed(fileobj))
    return extractor.owners


__all__ = [
    "OVERLAY_XATTR_PREFIXES", "ExtractRules", "Extractor", "Owner", "ensure_parent",
    "extract_tar", "remove_any",
]
