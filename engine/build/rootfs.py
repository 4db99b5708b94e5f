"""An image's files, mounted for a moment: where COPY looks for an existing destination,
where `--chown` names are resolved, and where `COPY --from` reads.

The mount is the same overlayfs stack a container gets (short `l/` lower layers from
the store) with a throwaway upper directory, so whiteouts and opaque directories mean
what they mean at run time. Nothing is written through it.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from engine.images.model import Image
from engine.images.store import ImageStore
from engine.runtime import mounts
from engine.securejoin import ScopeError, resolve_in_root


@asynccontextmanager
async def mounted_image(store: ImageStore, image: Image, scratch: Path) -> AsyncIterator[Path]:
    """The root of `image`'s files at `scratch/root` while the block runs."""
    root, upper, work = scratch / "root", scratch / "upper", scratch / "work"
    if not image.diff_ids:  # FROM scratch: nothing to mount
        await trio.to_thread.run_sync(functools.partial(root.mkdir, parents=True, exist_ok=True))
        yield root
        return
    await trio.to_thread.run_sync(functools.partial(
        mounts.mount_overlay, store.layer_links(image), upper, work, root, base=store.layers_dir))
    try:
        yield root
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_unmount_and_clear, root, scratch)


def _unmount_and_clear(root: Path, scratch: Path) -> None:
    mounts.unmount(root)
    shutil.rmtree(scratch, ignore_errors=True)


def path_kind(root: Path, path: str) -> str | None:
    """"dir", "file" or None: what `path` (absolute, in the image) is, links followed
    inside the image (blocking)."""
    try:
        target = resolve_in_root(root, path)
    except ScopeError:
        return None
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return None
    return "dir" if stat.S_ISDIR(mode) else "file"


def dir_stat(root: Path, path: str) -> os.stat_result | None:
    """The image's directory at `path` (mode, owner, mtime), or None (blocking)."""
    try:
        st = os.stat(resolve_in_root(root, path))
    except (OSError, ScopeError):
        return None
    return st if stat.S_ISDIR(st.st_mode) else None


__all__ = ["dir_stat", "mounted_image", "path_kind"]
