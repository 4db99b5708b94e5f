"""COPY and ADD of local files: which sources, their cache key, and the layer they add.

Docker's classic-builder rules (moby builder/dockerfile/copy.go):

* a source is a path or a Go `filepath.Match` glob relative to the root (the context,
  or a stage's rootfs for `COPY --from`); a leading `/` or `./` is dropped; a path
  that climbs out lexically is refused, symlinks are resolved *in scope*;
* a source that is itself a symlink is followed (the name stays the link's); inside
  a copied directory symlinks stay symlinks;
* more than one source after glob expansion needs a destination ending in `/`;
* the destination is relative to WORKDIR; a directory source copies its contents;
  a file lands as `dest/<name>` when dest ends in `/` or is a directory in the image,
  else it becomes `dest`; missing parents are made 0755, owned like the copy;
* owner root:root unless `--chown`; mtimes are the sources'; `chmod` (BuildKit's
  `--chmod`) sets the mode of every copied file and directory;
* ADD extracts a local tar (plain, gzip, bzip2, xz) into dest instead, keeping the
  archive's owners and modes, as moby does.

The layer is a deterministic PAX tarball (sorted, no user names, fixed mtime for the
directories it makes), so the same copy gives the same diff ID. Blocking throughout.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import attrs

from engine.build.dockerignore import clean_path
from engine.errors import InvalidParameter
from engine.gopattern import go_pattern
from engine.images.upperdir import HashingWriter, LayerTar, walk
from engine.securejoin import ScopeError, resolve_in_root
from engine.tarball.compression import decompressed
from engine.tarball.extract import ExtractRules, Owner, extract_tar

_CHUNK = 1024 * 1024


@attrs.frozen
class CopySource:
    """One source after glob expansion: its name relative to the root, and where it is
    on the host once a top-level symlink is followed in scope."""

    rel: str
    host: Path


# sources ---------------------------------------------------------------------------


def _has_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
            continue
        if name[i] in "*?[":
            return True
        i += 1
    return False


def _walk(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Everything below `root` (`engine.images.upperdir.walk`: depth first, names
    sorted, a directory before its contents, symlinks not followed), as Paths."""
    for rel, full, st in walk(str(root)):
        yield rel, Path(full), st


def _trimmed(pattern: str) -> str:
    """As moby: one leading `/`, then one leading `./`, dropped."""
    return pattern.removeprefix("/").removeprefix("./")


def _locate(root: Path, rel: str, shown: str, instruction: str) -> Path:
    try:
        host = resolve_in_root(root, rel)
    except ScopeError as exc:
        raise InvalidParameter(f"{instruction} failed: {shown}: {exc}") from None
    if not os.path.lexists(host):
        raise InvalidParameter(
            f"{instruction} failed: file not found in build context or excluded by "
            f".dockerignore: stat {shown}: file does not exist")
    return host


def resolve_sources(root: Path, patterns: Sequence[str], *, instruction: str = "COPY") -> list[str]:
    """The sources `patterns` name under `root`, globs expanded in walk order.

    Each result is a cleaned path relative to `root` (`.` for the root itself), the
    form `content_hash` and `write_copy_layer` take. Errors carry moby's wording,
    prefixed `<instruction> failed: `.
    """
    found: list[str] = []
    for pattern in patterns:
        trimmed = _trimmed(pattern)
        cleaned = clean_path(trimmed)
        if cleaned == ".." or cleaned.startswith("../"):
            raise InvalidParameter(
                f"{instruction} failed: forbidden path outside the build context: {trimmed} ()")
        if _has_wildcards(trimmed):
            regex = go_pattern(cleaned)
            if regex is None:
                continue  # moby ignores filepath.Match's ErrBadPattern: nothing matches
            for rel, _full, _st in _walk(root):
                if regex.match(rel):
                    _locate(root, rel, rel, instruction)  # a dangling link matched is an error
                    found.append(rel)
            continue
        _locate(root, cleaned, trimmed, instruction)
        found.append(cleaned)
    if not found:
        raise InvalidParameter(f"{instruction} failed: no source files were specified")
    return found


def _sources(root: Path, sources: Sequence[str], instruction: str = "COPY") -> list[CopySource]:
    out = []
    for rel in sources:
        cleaned = clean_path(_trimmed(rel))
        if cleaned == ".." or cleaned.startswith("../"):
            raise InvalidParameter(
                f"{instruction} failed: forbidden path outside the build context: {rel} ()")
        out.append(CopySource(cleaned, _locate(root, cleaned, rel, instruction)))
    return out


# the cache key ---------------------------------------------------------------------


def _field(hasher: hashlib._Hash, value: str | bytes) -> None:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    hasher.update(len(data).to_bytes(8, "big"))
    hasher.update(data)


def _file_digest(path: Path) -> bytes:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return hasher.digest()


def _hash_entry(hasher: hashlib._Hash, rel: str, full: Path, st: os.stat_result) -> None:
    mode = st.st_mode
    _field(hasher, rel)
    _field(hasher, f"{stat.S_IFMT(mode):o}:{stat.S_IMODE(mode):o}")
    if stat.S_ISREG(mode):
        _field(hasher, _file_digest(full))
    elif stat.S_ISLNK(mode):
        _field(hasher, os.readlink(full))
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        _field(hasher, str(st.st_rdev))


def content_hash(root: Path, sources: Sequence[str]) -> str:
    """`sha256:<hex>` over the sources' names, types, modes, link targets and contents
    (never mtimes or owners): what the build cache keys a COPY/ADD step on."""
    hasher = hashlib.sha256()
    for source in _sources(root, sources):
        _field(hasher, "source")
        _hash_entry(hasher, source.rel, source.host, os.stat(source.host))
        if os.path.isdir(source.host):
            for rel, full, st in _walk(source.host):
                _hash_entry(hasher, rel, full, st)
    return "sha256:" + hasher.hexdigest()


# the layer -------------------------------------------------------------------------


@attrs.frozen
class _Entry:
    """What the layer will hold at one path."""

    kind: bytes  # a tarfile type
    mode: int
    uid: int
    gid: int
    mtime: int
    host: Path | None = None  # content of a regular file
    size: int = 0
    linkname: str = ""
    rdev: int = 0


def is_archive(path: Path) -> bool:
    """Does `path` hold a tar, maybe compressed? (moby's IsArchivePath: one header reads.)"""
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=decompressed(f), mode="r|") as tf:
            return tf.next() is not None
    except Exception:  # whatever stops a tar header being read: not an archive
        return False


@attrs.define
class _Plan:
    existing: Callable[[str], str | None]
    owner: tuple[int, int]
    created_mtime: int
    entries: dict[str, _Entry] = attrs.field(factory=dict)
    # how the image has a directory (mode, owner, mtime): an entry that keeps it so
    image_dir: Callable[[str], os.stat_result | None] | None = None

    def is_dir(self, path: str) -> bool:
        entry = self.entries.get(path.lstrip("/"))
        if entry is not None:
            return entry.kind == tarfile.DIRTYPE
        return self.existing(path) == "dir"

    def ensure_dir(self, path: str) -> None:
        """Make `path` and its parents directories, creating what neither the image nor
        this copy has (0755, the copy's owner)."""
        current = ""
        for part in [p for p in path.split("/") if p]:
            current = f"{current}/{part}"
            entry = self.entries.get(current[1:])
            if entry is not None:
                if entry.kind != tarfile.DIRTYPE:
                    raise InvalidParameter(f"failed to copy files: mkdir {current}: not a directory")
                continue
            kind = self.existing(current)
            if kind == "dir":
                # The layer is unpacked into its own directory, where a parent without an
                # entry would be made 0755 root-owned and then shadow the image's (/tmp's
                # 1777): copy the image's metadata into an entry.
                st = self.image_dir(current) if self.image_dir is not None else None
                if st is not None:
                    self.entries[current[1:]] = _Entry(tarfile.DIRTYPE, stat.S_IMODE(st.st_mode),
                                                       st.st_uid, st.st_gid, int(st.st_mtime))
                continue
            if kind is not None:
                raise InvalidParameter(f"failed to copy files: mkdir {current}: not a directory")
            self.entries[current[1:]] = _Entry(tarfile.DIRTYPE, 0o755, *self.owner,
                                               self.created_mtime)

    def add(self, path: str, host: Path, st: os.stat_result, *, owner: tuple[int, int],
            chmod: int | None) -> None:
        mode = st.st_mode
        perm = stat.S_IMODE(mode) if chmod is None or stat.S_ISLNK(mode) else chmod
        common = (perm, *owner, int(st.st_mtime))
        if stat.S_ISDIR(mode):
            entry = _Entry(tarfile.DIRTYPE, *common)
        elif stat.S_ISREG(mode):
            entry = _Entry(tarfile.REGTYPE, *common, host=host, size=st.st_size)
        elif stat.S_ISLNK(mode):
            entry = _Entry(tarfile.SYMTYPE, *common, linkname=os.readlink(host))
        elif stat.S_ISFIFO(mode):
            entry = _Entry(tarfile.FIFOTYPE, *common)
        elif (stat.S_ISCHR(mode) and st.st_rdev != 0) or stat.S_ISBLK(mode):
            entry = _Entry(tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE, *common,
                           rdev=st.st_rdev)
        else:
            return  # sockets and overlay whiteouts are not copied
        key = path.strip("/")
        old = self.entries.get(key)
        if old is not None and old.kind == tarfile.DIRTYPE and entry.kind != tarfile.DIRTYPE:
            prefix = key + "/"
            for name in [n for n in self.entries if n.startswith(prefix)]:
                del self.entries[name]
        self.entries[key] = entry

    def add_tree(self, dest_dir: str, host: Path, *, owners: dict[str, Owner] | None,
                 chmod: int | None) -> None:
        """The contents of directory `host` into `dest_dir` (which must exist by then)."""
        for rel, full, st in _walk(host):
            known = owners.get(rel) if owners is not None else None
            owner = (known.uid, known.gid) if known is not None else self.owner
            self.add(posixpath.join(dest_dir, rel), full, st, owner=owner, chmod=chmod)


def _write(entries: dict[str, _Entry], out: IO[bytes]) -> LayerTar:
    sink = HashingWriter(out)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      bufsize=_CHUNK) as tf:
        for name in sorted(entries, key=lambda n: n.split("/")):
            entry = entries[name]
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = entry.kind, entry.mode, entry.mtime
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.linkname = entry.linkname
            if entry.kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = os.major(entry.rdev), os.minor(entry.rdev)
            if entry.kind == tarfile.REGTYPE and entry.host is not None:
                info.size = entry.size
                with open(entry.host, "rb") as f:
                    tf.addfile(info, f)
            else:
                tf.addfile(info)
    return LayerTar("sha256:" + sink.hasher.hexdigest(), sink.size)


def destination(dest: str, workdir: str) -> str:
    """The absolute destination: relative to WORKDIR, a trailing `/` kept (it matters)."""
    full = dest if dest.startswith("/") else posixpath.join("/", workdir.lstrip("/"), dest)
    cleaned = clean_path(full)
    return cleaned + "/" if dest.endswith("/") and cleaned != "/" else cleaned


def write_copy_layer(
    root: Path,
    sources: Sequence[str],
    dest: str,
    workdir: str,
    out: IO[bytes],
    *,
    owner: tuple[int, int] | None,
    chmod: int | None,
    extract_archives: bool,
    existing: Callable[[str], str | None],
    instruction: str = "COPY",
    created_mtime: int = 0,
    image_dir: Callable[[str], os.stat_result | None] | None = None,
) -> LayerTar:
    """Write the layer COPY/ADD of `sources` (from `resolve_sources`) to `dest` adds.

    `existing(abs_path)` says what the image has there: "dir", "file" or None (the
    caller resolves the image's symlinks). Directories the image already has get no
    entry, unless `image_dir(abs_path)` gives their metadata (then the entry keeps it).
    `created_mtime` is the mtime of directories this copy creates.
    """
    copies = _sources(root, sources, instruction)
    if len(copies) > 1 and not dest.endswith("/"):
        raise InvalidParameter(
            f"When using {instruction} with more than one source file, the destination "
            "must be a directory and end with a /")
    target = destination(dest, workdir)
    as_dir = target.endswith("/")
    target = target.rstrip("/") or "/"
    who = owner if owner is not None else (0, 0)
    plan = _Plan(existing, who, created_mtime, image_dir=image_dir)
    with tempfile.TemporaryDirectory(prefix="moorage-add-") as scratch:
        for index, source in enumerate(copies):
            st = os.stat(source.host)  # a top-level symlink is followed (in scope)
            if stat.S_ISDIR(st.st_mode):
                plan.ensure_dir(target)
                plan.add_tree(target, source.host, owners=None, chmod=chmod)
            elif extract_archives and is_archive(source.host):
                unpacked = Path(scratch) / str(index)
                with open(source.host, "rb") as f:
                    owners = extract_tar(f, unpacked, ExtractRules.foreign(
                        f"archive {source.rel}", absolute_names=True))
                plan.ensure_dir(target)
                plan.add_tree(target, unpacked, owners=owners, chmod=None)
            elif stat.S_ISREG(st.st_mode):
                name = posixpath.basename(source.rel)
                into = as_dir or plan.is_dir(target)
                path = posixpath.join(target, name) if into else target
                if path == "/":
                    raise InvalidParameter(f"{instruction} failed: cannot replace the root directory")
                plan.ensure_dir(posixpath.dirname(path))
                plan.add(path, source.host, st, owner=who, chmod=chmod)
            else:
                raise InvalidParameter(
                    f"{instruction} failed: {source.rel}: not a regular file or directory")
        return _write(plan.entries, out)


__all__ = [
    "CopySource", "content_hash", "destination", "is_archive", "resolve_sources",
    "write_copy_layer",
]
