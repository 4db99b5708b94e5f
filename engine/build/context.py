"""The build context: the tarball `docker build` sends, made a safe directory.

The context comes from the client, so it is hostile until proven otherwise: it is
extracted by moord's one safe extractor (`engine.tarball.extract`: escapes refused,
parents resolved in scope, nothing written through a symlink, hard links inside), with
the rules of a client's archive:

* members with absolute names are refused too (the CLI never sends them);
* symlinks are kept as symlinks, whatever they point at: they mean something only
  when a COPY follows them, in scope;
* device nodes and fifos are skipped; `.wh.` names are ordinary files (whiteouts mean
  something in a layer, not in a context);
* ownership in the tar is ignored: the files belong to the daemon (root), as in
  Docker's classic builder, where COPY makes them root:root unless `--chown`;
  modes and times are kept;
* the archive may end right after its last member's data, without the padding to a
  512-byte block or the end-of-archive blocks: the docker CLI sends such contexts when
  it adds a Dockerfile from elsewhere (`-f -`, `-f ../Dockerfile`), and Go's tar reader
  (dockerd's) takes them. A member whose data is cut short is still refused.

Then the `.dockerignore` is applied (`drop_ignored`) and the Dockerfile read
(`read_dockerfile`). Everything here blocks: run it through `trio.to_thread`.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO, cast

import attrs

from engine.build.dockerignore import DOCKERIGNORE, DockerIgnore, clean_path
from engine.errors import InvalidParameter, SystemFailure
from engine.securejoin import ScopeError, resolve_in_root
from engine.tarball.compression import decompressed
from engine.tarball.extract import Extractor, ExtractRules, remove_any

DEFAULT_DOCKERFILE = "Dockerfile"
#: A Dockerfile is text a person wrote; more than this is a mistake or an attack.
MAX_DOCKERFILE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE


class DockerfileNotFound(SystemFailure):
    """`Cannot locate specified Dockerfile`: moby answers it as an untyped error (500)."""


#: a client's tarball: moord's ownership, no devices, no xattrs, absolute names refused
CONTEXT_RULES = ExtractRules.foreign("build context")


class _PaddedAtEnd:
    """A tar stream read as if it ended on a block boundary: once the source is
    exhausted, zeros up to the next 512-byte boundary. `real` counts the bytes that
    came from the source, so what the zeros stood in for can be checked afterwards."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.real = 0
        self.zeros: int | None = None  # still to give, once the source has ended

    def read(self, size: int = -1) -> bytes:
        if self.zeros is None:
            data = self.inner.read(size)
            if data:
                self.real += len(data)
                return data
            self.zeros = -self.real % _BLOCK
        n = self.zeros if size < 0 else min(size, self.zeros)
        self.zeros -= n
        return bytes(n)


@attrs.define
class _ContextExtractor(Extractor):
    """The extractor, noting where the last member's data ends in the stream."""

    data_end: int = 0

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self.data_end = m.offset_data + (m.size if m.isreg() else 0)
        super().member(tf, m)


def extract_context(tarball: Path, dest: Path) -> None:
    """Extract the build context tarball (plain, gzip, bzip2 or xz) into `dest`."""
    with open(tarball, "rb") as f:
        stream = _PaddedAtEnd(decompressed(f))
        extractor = _ContextExtractor.into(dest, CONTEXT_RULES)

        def whole() -> None:
            if stream.real < extractor.data_end:
                raise extractor.fail("unexpected end of data: the last member is cut short")

        extractor.extract(cast(IO[bytes], stream), then=whole)


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
    "CONTEXT_RULES", "DEFAULT_DOCKERFILE", "DockerfileNotFound", "drop_ignored",
    "extract_context", "read_dockerfile",
]
