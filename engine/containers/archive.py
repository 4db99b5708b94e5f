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

import errno
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

from engine.errors import InvalidParameter, NotFound, SystemFailure
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


def _lstat(root: Path, target: Path) -> os.stat_result:
    """`lstat`, except of the root itself: a running container's is `/proc/<pid>/root`, a
    symlink to the host, while the container sees a directory."""
    return os.stat(target) if target == root else os.lstat(target)


def path_stat(root: Path, path: str) -> PathStat:
    """What `HEAD …/archive?path=` reports (blocking)."""
    target = _resolve(root, path, follow=_follows_final_link(path))
    try:
        st = _lstat(root, target)
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
        if target == root:
            _add_root(tf, root, base)
        else:
            tf.add(target, arcname=base, recursive=True)
    return info


#: What the runtime mounts over a running container's root: archived as the empty
#: directories dockerd's archive of the container's root filesystem shows.
_RUNTIME_MOUNTS = frozenset({"proc", "sys", "dev"})


def _add_root(tf: tarfile.TarFile, root: Path, base: str) -> None:
    """The whole root filesystem. A running container's root is `/proc/<pid>/root` (see
    `_lstat`), with the kernel's /proc, /sys and /dev mounted in it: those go as bare
    directories, their contents are the host's view of the container, not its files."""
    tf.add(os.path.join(root, "."), arcname=base, recursive=False)
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        arcname = posixpath.join(base, name)
        nested = not (name in _RUNTIME_MOUNTS and os.path.isdir(path))
        tf.add(path, arcname=arcname, recursive=nested)


@attrs.frozen
class Writable:
    """Where a container may be written to, as `docker cp` judges it (dockerd's
    `checkWritablePath`): its volume and bind mounts (destination, read-only), and whether
    the rest of its root filesystem is read-only (`--read-only`)."""

    readonly_rootfs: bool = False
    mounts: tuple[tuple[str, bool], ...] = ()

    @classmethod
    def of(cls, c: Container) -> Writable:
        # `--tmpfs` mounts are not listed: dockerd does not count them either
        return cls(c.host.readonly_rootfs,
                   tuple((m.destination, not m.rw) for m in c.mounts if m.listed))

    def check(self, container_path: str) -> None:
        """Refuse in dockerd's words (400) if `container_path` (resolved) may not change."""
        best: tuple[str, bool] | None = None
        for destination, read_only in self.mounts:
            dest = posixpath.normpath(destination)
            inside = container_path == dest or container_path.startswith(dest.rstrip("/") + "/")
            if inside and (best is None or len(dest) > len(best[0])):
                best = (dest, read_only)
        if best is not None:
            if best[1]:
                raise InvalidParameter("mounted volume is marked read-only")
            return
        if self.readonly_rootfs:
            raise InvalidParameter("container rootfs is marked read-only")


def _inside(root: Path, host_path: str | os.PathLike[str] | None) -> str:
    """A host path under `root` as the container names it; "" if it is not under root."""
    if host_path is None:
        return ""
    try:
        rel = Path(os.fspath(host_path)).relative_to(root)
    except ValueError:
        return ""
    return "/" + rel.as_posix() if rel.parts else "/"


def extract_archive(root: Path, path: str, source: IO[bytes], *, keep_owner: bool,
                    writable: Writable | None = None) -> None:
    """Unpack a tar into the directory `path` of the container (blocking).

    Refused where the container may not write (`writable`), as dockerd refuses it. A
    failing write names the file as the container sees it, never the host path.
    """
    target = _resolve(root, path, follow=True)
    if not target.is_dir():
        if not os.path.lexists(target):
            raise NotFound(f"Could not find the file {path} in container")
        raise InvalidParameter(f"extraction point is not a directory: {path}")
    if writable is not None:
        writable.check(_inside(root, target) or "/")
    try:
        owners = extract_tar(source, target,
                             ExtractRules.foreign("archive", absolute_names=True))
    except OSError as exc:
        where = _inside(root, exc.filename) or path
        detail = (exc.strerror or exc.__class__.__name__).lower()
        if exc.errno == errno.EROFS:
            raise InvalidParameter(f"cannot copy to {where}: {detail}") from None
        raise SystemFailure(f"cannot copy to {where}: {detail}") from None
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


__all__ = ["PathStat", "Writable", "container_root", "extract_archive", "go_mode", "path_stat",
           "write_archive"]
