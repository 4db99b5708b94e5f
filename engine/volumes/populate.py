"""Filling a new volume from the image: Docker's copy-on-first-mount.

The first time a volume is mounted where the image has a directory, and the volume is
empty, it gets that directory's content, owners, modes and the directory's own owner
and mode (a volume-root `uid`/`gid`/`mode` option wins over the latter). Once that has
happened, or once the volume was found holding data, moord never copies into it again
(`Volume.populated`, saved in the record), so data a container deleted does not come
back. The copy runs under the volume's lock, in a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from engine.securejoin import ScopeError, resolve_in_root
from engine.volumes import copy as content

if TYPE_CHECKING:
    from engine.volumes.service import VolumeService

log = logging.getLogger(__name__)

# options that, when a volume has them, say how its root must be owned: they win over
# the ownership of the image directory copied in (the local driver's uid/gid/mode)
OWNERSHIP_OPTIONS = frozenset({"uid", "gid", "mode"})


async def populate_from_root(service: VolumeService, volume_name: str, rootfs: Path,
                             destination: str) -> bool:
    """`populate` from `destination` inside a mounted container root (resolved in scope)."""
    try:
        source = await trio.to_thread.run_sync(resolve_in_root, rootfs, destination)
    except ScopeError as exc:
        log.warning("volume %s: not copying image content: %s", volume_name, exc)
        return False
    return await populate(service, volume_name, source)


async def populate(service: VolumeService, volume_name: str, source_dir: Path) -> bool:
    """Copy `source_dir` (an image directory) into the volume if the volume is new and empty.

    The volume must be mounted (its driver's `path` must be usable) and its driver must
    allow it (`capabilities().populate`). `source_dir` must already be resolved safely
    inside the container's root (`populate_from_root` does that). Returns True if
    anything was copied.
    """
    record = service.get(volume_name)
    driver = service.driver(record.driver)
    if record.populated or not driver.capabilities().populate:
        return False
    async with service.lock(volume_name):
        path = await service.call_driver(f"get {volume_name}", lambda: driver.path(volume_name))
        keep_root = bool(OWNERSHIP_OPTIONS & set(record.options))
        outcome = await trio.to_thread.run_sync(_populate_sync, source_dir, Path(path), keep_root)
        if outcome is None:
            return False
        record.populated = True
        await service.store.save(volume_name, record)
    if outcome:
        log.debug("volume %s: copied the image's content from %s", volume_name, source_dir)
    return outcome


def _populate_sync(source: Path, destination: Path, keep_root: bool) -> bool | None:
    """True: copied; False: the volume had data (never copy again); None: nothing to copy."""
    if not destination.is_dir():
        return None
    if not content.is_empty_dir(destination):
        return False
    if not source.is_dir() or source.is_symlink():
        return None
    content.copy_tree(source, destination, root_metadata=not keep_root)
    return True


__all__ = ["OWNERSHIP_OPTIONS", "populate", "populate_from_root"]
