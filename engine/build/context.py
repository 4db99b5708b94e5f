"""The build context: the tarball `docker build` sends, made a safe directory.

The context comes from the client, so it is hostile until proven otherwise:

* members with absolute names or `..` escapes are refused (the CLI never sends them);
* parents are resolved in scope (`resolve_in_root`): a symlink in the context never
  sends a later member outside it; the final component is never followed and
  regular files are created `O_EXCL|O_NOFOLLOW`;
* symlinks are kept as symlinks, whatever they point at: they mean something only
  when a COPY follows them, in scope;
* hard links must name an existing non-directory inside the context;
* device nodes and fifos are skipped; `.wh.` names are ordinary files (whiteouts mean
  something in a layer, not in a context);
* ownership in the tar is ignored: the files belong to the daemon (root), as in
  Docker's classic builder, where COPY makes them root:root unless `--chown`;
  modes and mtimes are kept.

Then the `.dockerignore` is applied (`drop_ignored`) and the Dockerfile read
(`read_dockerfile`). Everything here blocks: run it through `trio.to_thread`.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO

import attrs

from engine.build.dockerignore import DOCKERIGNORE, DockerIgnore, clean_path
from engine.errors import InvalidParameter, SystemFailure
from engine.images.unpack import decompressed, ensure_parent, remove_any
from engine.securejoin import ScopeError, resolve_in_root

DEFAULT_DOCKERFILE = "Dockerfile"
#: A Dockerfile is text a person wrote; more than this is a mistake or an attack.
MAX_DOCKERFILE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class DockerfileNotFound(SystemFailure):
    """`Cannot locate specified Dockerfile`: moby answers it as an untyped error (500)."""


@attrs.frozen
class Owner:
    """The uid/gid a tar member named (kept only for ADD's archive extraction)."""

    uid: int
    gid: int


def _member_rel(name: str, label: str, *, allow_absolute: bool) -> str:
    """The member's cleaned path relative to the destination; escapes are refused."""
    if name.startswith("/") and not allow_absolute:
        raise InvalidParameter(f"invalid {label}: member {name!r} has an absolute name")
    cleaned = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise InvalidParameter(f"invalid {label}: member {name!r} is outside the {label}")
    return "" if cleaned == "." else cleaned


@attrs.define
class _Extractor:
    """Writes members one by one; directory metadata is set last (children touch it)."""

    dest: Path
    label: str
    allow_absolute: bool
    owners: dict[str, Owner] = attrs.field(factory=dict)
    dirs: list[tuple[str, tarfile.TarInfo]] = attrs.field(factory=list)

    def _resolve(self, rel: str, name: str, *, follow_final: bool = False) -> Path:
        try:
            return resolve_in_root(self.dest, rel, follow_final=follow_final)
        except ScopeError as exc:
            raise InvalidParameter(f"invalid {self.label}: member {name!r}: {exc}") from None

    def _link_source(self, m: tarfile.TarInfo, target: Path) -> Path:
        if m.linkname.startswith("/") and not self.allow_absolute:
            raise InvalidParameter(
                f"invalid {self.label}: hard link {m.name!r} points outside it ({m.linkname!r})")
        cleaned = posixpath.normpath(m.linkname.lstrip("/")) if m.linkname.strip("/") else "."
        if cleaned in (".", "..") or cleaned.startswith("../"):
            raise InvalidParameter(
                f"invalid {self.label}: hard link {m.name!r} points outside it ({m.linkname!r})")
        source = self._resolve(cleaned, m.name)
        try:
            st = os.lstat(source)
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidParameter(
                f"invalid {self.label}: hard link {m.name!r}: target {m.linkname!r} not found"
            ) from None
        if stat.S_ISDIR(st.st_mode) or source == target:
            raise InvalidParameter(
                f"invalid {self.label}: hard link {m.name!r} to {m.linkname!r} is not allowed")
        return source

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _member_rel(m.name, self.label, allow_absolute=self.allow_absolute)
        if not rel:
            return  # the root: the destination is ours, its metadata too
        if m.ischr() or m.isblk() or m.isfifo():
            return  # never made from a client's tarball
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            return  # other tar types (GNU volume headers, …) carry no file
        target = self._resolve(rel, m.name)
        ensure_parent(self.dest, target, m.name, self.label)
        link_source = self._link_source(m, target) if m.islnk() else None
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            remove_any(target)
        key = target.relative_to(self.dest).as_posix()
        if m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(target, 0o700)
            self.dirs.append((rel, m))
            self.owners[key] = Owner(m.uid, m.gid)
            return
        if link_source is not None:
            os.link(link_source, target, follow_symlinks=False)
            return  # the inode keeps its first name's metadata
        if m.issym():
            os.symlink(m.linkname, target)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
                src = tf.extractfile(m)
                if src is not None:
                    shutil.copyfileobj(src, out, _CHUNK)
            os.chmod(target, m.mode & 0o7777)
        os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)
        self.owners[key] = Owner(m.uid, m.gid)

    def finish(self) -> None:
        for rel, m in reversed(self.dirs):
            path = self._resolve(rel, m.name)  # again: a later member may be a symlink now
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
            except FileNotFoundError:
                continue
            os.chmod(path, m.mode & 0o7777, follow_symlinks=False)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def extract_tar(fileobj: IO[bytes], dest: Path, *, label: str = "build context",
                allow_absolute: bool = False) -> dict[str, Owner]:
    """Extract the (possibly compressed) tar stream into `dest` by the rules above.

    Returns the uid/gid each member named, by its path relative to `dest`: the context
    ignores them, ADD's archive extraction keeps them. `label` names the archive in
    errors; `allow_absolute` strips a leading `/` (as Docker's Untar does for ADD)
    instead of refusing it.
    """
    dest = Path(os.path.abspath(dest))
    dest.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(dest, label, allow_absolute)
    current = "(archive header)"
    try:
        with tarfile.open(fileobj=decompressed(fileobj), mode="r|") as tf:
            for m in tf:
                current = m.name
                extractor.member(tf, m)
        extractor.finish()
    except InvalidParameter:
        raise
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError,
            ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO,
                                                      errno.EROFS):
            raise
        raise InvalidParameter(f"invalid {label} near member {current!r}: {exc}") from None
    return extractor.owners


def extract_context(tarball: Path, dest: Path) -> None:
    """Extract the build context tarball (plain, gzip, bzip2 or xz) into `dest`."""
    with open(tarball, "rb") as f:
        extract_tar(f, dest)


def _read_regular(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes, not following a final symlink; None if absent or not one."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidParameter(f"{path.name} is larger than {limit} bytes")
    return data


def _in_context(context: Path, name: str) -> Path | None:
    """Where `name` is in the context, symlinks resolved in scope; None if it escapes."""
    cleaned = clean_path(name.lstrip("/"))
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    try:
        return resolve_in_root(context, cleaned)
    except ScopeError:
        return None


def drop_ignored(context: Path, dockerfile_name: str) -> None:
    """Delete from the extracted context what its `.dockerignore` excludes.

    The CLI already leaves most of it out; what it must send anyway (the Dockerfile and
    `.dockerignore` themselves, when excluded) and what other clients send is removed
    here, so `COPY . .` sees what Docker's would. Call after `read_dockerfile`.
    """
    where = _in_context(context, DOCKERIGNORE)
    text = _read_regular(where, MAX_DOCKERFILE_BYTES) if where is not None else None
    if text is None:
        return
    rules = DockerIgnore.parse(text)
    for name in rules.build_files_to_drop(dockerfile_name or DEFAULT_DOCKERFILE):
        if not name.startswith("../"):
            remove_any(resolve_in_root(context, name, follow_final=False))
    excluded_dirs: list[Path] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        full_dir = context / rel_dir if rel_dir else context
        for name in sorted(os.listdir(full_dir)):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = full_dir / name
            excluded = rules.excludes(rel)
            if stat.S_ISDIR(os.lstat(full).st_mode):
                if excluded and not rules.may_reinclude_below(rel):
                    shutil.rmtree(full)
                    continue
                pending.append(rel)
                if excluded:
                    excluded_dirs.append(full)
            elif excluded:
                os.unlink(full)
    for directory in reversed(excluded_dirs):  # children before parents
        try:
            os.rmdir(directory)  # kept if an exception brought something below back
        except OSError:
            pass


def read_dockerfile(context: Path, name: str) -> bytes:
    """The Dockerfile `name` (a path inside the context; "" means `Dockerfile`).

    As Docker: the default name falls back to `dockerfile`; a missing one is
    "Cannot locate specified Dockerfile: <name>", an empty one an error too.
    """
    name = name or DEFAULT_DOCKERFILE
    where = _in_context(context, name)
    if where is None:
        raise InvalidParameter(f"forbidden path outside the build context: {name} ()")
    data = _read_regular(where, MAX_DOCKERFILE_BYTES)
    if data is None and name == DEFAULT_DOCKERFILE:
        lower = _in_context(context, name.lower())
        if lower is not None:
            data = _read_regular(lower, MAX_DOCKERFILE_BYTES)
            if data is not None:
                name = name.lower()
    if data is None:
        raise DockerfileNotFound(f"Cannot locate specified Dockerfile: {name}")
    if not data:
        raise InvalidParameter(f"the Dockerfile ({name}) cannot be empty")
    return data


__all__ = [
    "DEFAULT_DOCKERFILE", "DockerfileNotFound", "Owner", "drop_ignored", "extract_context",
    "extract_tar", "read_dockerfile",
]
