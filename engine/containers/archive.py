"""`docker cp`: files into and out of a container's root filesystem, as tar streams.

The container's overlay root is used as the container sees it: mounted while it runs,
mounted for the copy while it is stopped (with the container's own upper layer, so a
copy into a stopped container is there when it starts). Paths are resolved inside that
root, symlinks followed in scope, so `..` or a link cannot reach the host. What comes
in is unpacked by the safe extractor (`engine.tarball.extract`; no escapes, no device
nodes); ownership is root's unless the client asks to keep the archive's
(`copyUIDGID`, `docker cp -a`). Volumes and binds are reached as the container
sees them, running or stopped.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs
import trio

from engine.errors import InvalidParameter, NotFound
from engine.runtime import mounts
from engine.securejoin import ScopeError, resolve_in_root
from engine.tarball.extract import ExtractRules, extract_tar

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager
    from engine.containers.model import Container
    from engine.volumes.model import SpecMount

# Go's os.FileMode type bits, which the stat header carries
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR = 1 << 21
_GO_STICKY = 1 << 20


@attrs.frozen
class PathStat:
    name: str
    size: int
    mode: int  # Go FileMode bits, as the docker CLI reads them
    mtime: float
    link_target: str


def go_mode(st: os.stat_result) -> int:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        mode |= _GO_DIR
    elif kind == stat.S_IFLNK:
        mode |= _GO_SYMLINK
    elif kind == stat.S_IFIFO:
        mode |= _GO_PIPE
    elif kind == stat.S_IFSOCK:
        mode |= _GO_SOCKET
    elif kind == stat.S_IFCHR:
        mode |= _GO_DEVICE | _GO_CHAR
    elif kind == stat.S_IFBLK:
        mode |= _GO_DEVICE
    if st.st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st.st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st.st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def _resolve(root: Path, path: str, *, follow: bool) -> Path:
    if not path:
        raise InvalidParameter("Path cannot be empty")
    try:
        return resolve_in_root(root, path if path.startswith("/") else "/" + path,
                               follow_final=follow)
    except ScopeError as exc:
        raise InvalidParameter(f"invalid path {path!r}: {exc}") from None


def _follows_final_link(path: str) -> bool:
    """Docker resolves every link but the last, unless the path ends in `/` or `/.`."""
    return path.endswith("/") or path.endswith("/.")


def path_stat(root: Path, path: str) -> PathStat:
    """What `HEAD …/archive?path=` reports (blocking)."""
    target = _resolve(root, path, follow=_follows_final_link(path))
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container") from None
    link = os.readlink(target) if stat.S_ISLNK(st.st_mode) else ""
    name = posixpath.basename(path.rstrip("/")) or "/"
    return PathStat(name, st.st_size, go_mode(st), st.st_mtime, link)


def write_archive(root: Path, path: str, out: IO[bytes]) -> PathStat:
    """A tar of `path` (file or directory, named by its base name) to `out` (blocking).

    A path ending in `/.` archives the directory's contents, as `docker cp dir/. x` asks:
    named `./…` under a `./` entry, as dockerd names them, because the docker CLI renames
    the `.` prefix when the destination does not exist. A final symlink is archived as
    a link (`docker cp -L` asks for its target itself), unless the path ends in `/`.
    """
    contents_only = path.endswith("/.")
    target = _resolve(root, path.removesuffix("/.") or "/", follow=_follows_final_link(path))
    if not os.path.lexists(target):
        raise NotFound(f"Could not find the file {path} in container")
    info = path_stat(root, path.removesuffix("/.") or "/")
    base = "." if contents_only else posixpath.basename(path.rstrip("/")) or "."
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        tf.add(target, arcname=base, recursive=True)
    return info


def extract_archive(root: Path, path: str, source: IO[bytes], *, keep_owner: bool) -> None:
    """Unpack a tar into the directory `path` of the container (blocking)."""
    target = _resolve(root, path, follow=True)
    if not target.is_dir():
        if not os.path.lexists(target):
            raise NotFound(f"Could not find the file {path} in container")
        raise InvalidParameter(f"extraction point is not a directory: {path}")
    owners = extract_tar(source, target, ExtractRules.foreign("archive", absolute_names=True))
    if keep_owner:
        for rel, owner in owners.items():
            try:
                os.lchown(target / rel, owner.uid, owner.gid)
            except OSError:
                continue


@asynccontextmanager
async def container_root(m: ContainerManager, c: Container) -> AsyncIterator[Path]:
    """The container's root filesystem as it sees it, for the length of the block.

    A running (or paused) container's is its process's `/proc/<pid>/root`: the root as
    it sees it, with its volumes, binds and tmpfs mounts, as `docker cp` reaches them.
    A stopped one's overlay is mounted for the copy, with its volumes and binds bound
    where the container would have them (its tmpfs mounts hold nothing while it is
    stopped), and all of it undone afterwards.
    """
    paths = m.paths(c)
    async with m.live_of(c).op_lock:
        if c.state.is_live and c.state.pid > 0:
            proc_root = Path(f"/proc/{c.state.pid}/root")
            if await trio.to_thread.run_sync(os.path.isdir, proc_root):
                yield proc_root
                return
        if await trio.to_thread.run_sync(mounts.is_mountpoint, paths.rootfs):
            yield paths.rootfs  # mounted already (a start under way or failed): as it is
            return
        image = m.images.get(c.image_id)
        if image is None:
            raise NotFound(f"No such image: {c.image_id}")
        await trio.to_thread.run_sync(lambda: mounts.mount_overlay(
            m.images.layer_links(image), paths.upper, paths.work, paths.rootfs,
            base=m.images.layers_dir))
        bound: list[Path] = []
        volumes = m.volumes if c.mounts else None
        try:
            if volumes is not None:
                specs = await volumes.mount_for_start(c.id, c.mounts, rootfs=paths.rootfs)
                binds = [s for s in specs if s.kind == "bind"]
                await trio.to_thread.run_sync(_bind_all, paths.rootfs, binds, bound)
            yield paths.rootfs
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_unmount_all, [*reversed(bound), paths.rootfs])
                if volumes is not None:
                    await volumes.unmount_after_stop(c.id, c.mounts)


def _bind_all(rootfs: Path, binds: list[SpecMount], bound: list[Path]) -> None:
    """Bind each mount at its destination inside `rootfs`, appending to `bound` as it
    goes (so a failure part-way leaves the list of what to undo)."""
    for spec in binds:
        target = resolve_in_root(rootfs, spec.destination)
        source = Path(spec.source)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch(exist_ok=True)
        mounts.bind_mount(source, target, readonly=spec.readonly)
        bound.append(target)


def _unmount_all(targets: list[Path]) -> None:
    for target in targets:
        mounts.unmount(target)


__all__ = ["PathStat", "container_root", "extract_archive", "go_mode", "path_stat",
           "write_archive"]
