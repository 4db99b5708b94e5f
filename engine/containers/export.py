"""`docker export`: a container's filesystem as one tar, streamed.

What the container's root holds, as its image's layers and its writable layer make it,
without its volumes, binds or tmpfs mounts (as dockerd's export, which tars the layer
and not the container's mounts). The files are read through a read-only overlay of
their own, the writable layer on top of the image's layers, mounted beside the
container's (running or not) and never in its way; no pause. Entries are named from the
root without a leading `./`, with modes, owners, mtimes, xattrs and hard links kept;
sockets are left out.

The tar is written in a worker thread and handed to trio chunk by chunk, so a slow
client holds the writer back and a multi-GB root never sits in memory or on disk.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from engine.containers.model import Container, Status
from engine.errors import Conflict, EngineError, NotFound
from engine.images.upperdir import add_entry, walk
from engine.runtime import mounts

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]
_CHUNK = 1024 * 1024


def check_exportable(m: ContainerManager, c: Container) -> None:
    """Refuse before the answer starts: a container being removed, or without its image."""
    if c.state.status in (Status.REMOVING, Status.DEAD):
        raise Conflict(f"You cannot export container {c.id} which is being removed")
    if m.images.get(c.image_id) is None:
        raise NotFound(f"No such image: {c.image_id}")


@contextlib.asynccontextmanager
async def readonly_root(m: ContainerManager, c: Container) -> AsyncIterator[Path]:
    """`c`'s files (writable layer over the image's layers) mounted read-only for the
    length of the block, under moord's exec root."""
    check_exportable(m, c)
    image = m.images.get(c.image_id)
    assert image is not None
    target = _exports_dir(m.config.exec_root) / f"{c.id[:12]}-{secrets.token_hex(4)}"
    upper = m.paths(c).upper
    lowers: list[str | Path] = [upper, *m.images.layer_links(image)]

    def mount() -> None:
        upper.mkdir(parents=True, exist_ok=True)  # a container never started has none yet
        if len(lowers) > 1:
            mounts.mount_readonly_overlay(lowers, target, base=m.images.layers_dir)
        else:  # an image without layers: the writable layer is all there is
            target.mkdir(parents=True, exist_ok=True)
            mounts.bind_mount(upper, target, readonly=True)

    def unmount() -> None:
        mounts.unmount(target)
        with contextlib.suppress(OSError):
            target.rmdir()

    async with m.live_of(c).op_lock:  # not while a removal is under way
        check_exportable(m, c)
        await trio.to_thread.run_sync(mount)
    try:
        yield target
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(unmount)


def _exports_dir(exec_root: Path) -> Path:
    return exec_root / "export"


def clear_stale_exports(exec_root: Path) -> None:
    """Unmount what an export left when moord died under it (blocking; at start-up)."""
    directory = _exports_dir(exec_root)
    if not directory.is_dir():
        return
    for target in directory.iterdir():
        try:
            mounts.unmount(target)
            target.rmdir()
        except (OSError, EngineError) as exc:
            log.warning("clearing the stale export mount %s: %s", target, exc)


class _ToTrio:
    """A file-like sink for the tar-writing thread: each write goes to `send` on trio."""

    def __init__(self, send: Send) -> None:
        self.send = send

    def write(self, data: bytes) -> int:
        trio.from_thread.run(self.send, bytes(data))
        return len(data)


def write_tree(root: Path, out: _ToTrio) -> None:
    """Every file under `root` into a tar on `out` (blocking)."""
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,  # type: ignore[call-overload]
                      bufsize=_CHUNK) as tf:
        for rel, full, st in walk(str(root)):
            add_entry(tf, rel, full, st, links)


async def export_container(m: ContainerManager, c: Container, send: Send) -> None:
    """Stream `c`'s filesystem as a tar through `send`."""
    async with readonly_root(m, c) as root:
        await trio.to_thread.run_sync(write_tree, root, _ToTrio(send))
    m.publish(c, "export")


__all__ = ["check_exportable", "clear_stale_exports", "export_container", "readonly_root",
           "write_tree"]
