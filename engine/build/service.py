"""Builds for the daemon: where contexts and scratch mounts live, the cache, prune.

Each build gets `<data-root>/build/<random>/` (the extracted context, scratch mounts
for COPY); it is removed when the build ends. At start-up whatever a crashed moord
left there is unmounted and removed.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import AsyncIterable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from engine.batching import write_in_batches
from engine.build.builder import Builder, BuildOptions, Emit
from engine.build.cache import BuildCache
from engine.images.model import Image
from engine.runtime import mounts

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager
    from engine.images.store import ImageStore
    from engine.registry.service import RegistryService

log = logging.getLogger(__name__)


def _mounts_under(root: Path) -> list[Path]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4 and fields[4].startswith(prefix):
                found.append(Path(fields[4]))
    return sorted(found, key=lambda p: len(str(p)), reverse=True)


def _clean(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for mounted in _mounts_under(root):
        mounts.unmount(mounted)
    for entry in root.iterdir():
        shutil.rmtree(entry, ignore_errors=True)


class BuildService:
    def __init__(self, data_root: Path, containers: ContainerManager, images: ImageStore,
                 registry: RegistryService | None, *, durable: bool = True) -> None:
        self.root = data_root / "build"
        self.cache = BuildCache(data_root / "build-cache.json", durable=durable)
        self.containers = containers
        self.images = images
        self.registry = registry

    @classmethod
    async def open(cls, data_root: Path, containers: ContainerManager, images: ImageStore,
                   registry: RegistryService | None, *, durable: bool = True) -> BuildService:
        service = cls(data_root, containers, images, registry, durable=durable)
        await trio.to_thread.run_sync(_clean, service.root)
        return service

    async def workspace(self) -> Path:
        path = self.root / secrets.token_hex(8)
        await trio.to_thread.run_sync(lambda: path.mkdir(parents=True))
        return path

    async def release(self, workspace: Path) -> None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_clean_one, workspace)

    async def release_later(self, workspace: Path) -> None:
        """`release` for a background task: a failure is logged (start-up retries it)."""
        try:
            await self.release(workspace)
        except Exception:
            log.exception("removing build workspace %s failed", workspace)

    async def receive(self, chunks: AsyncIterable[bytes], target: Path) -> None:
        """Stream a request body to `target`, off the trio thread."""
        f = await trio.to_thread.run_sync(lambda: open(target, "wb"))  # noqa: SIM115
        try:
            await write_in_batches(chunks, f.write)
        finally:
            await trio.to_thread.run_sync(f.close)

    async def build(self, dockerfile: object, context: Path, workspace: Path,
                    options: BuildOptions, emit: Emit) -> Image:
        from engine.dockerfile import Dockerfile

        assert isinstance(dockerfile, Dockerfile)
        builder = Builder(self.containers, self.images, self.registry, self.cache,
                          workspace / "scratch")
        return await builder.build(dockerfile, context, options, emit)

    async def prune(self) -> tuple[list[str], int]:
        """Forget every cached step, and remove the images only the cache kept: untagged,
        unused by containers, parents of no other image (repeated up the chains)."""
        candidates = self.cache.image_ids()
        await self.cache.forget(None)
        removed: list[str] = []
        reclaimed = 0
        progress = True
        while progress:
            progress = False
            parents = {img.parent for img in self.images.list()}
            for image_id in sorted(candidates - set(removed)):
                image = self.images.get(image_id)
                if image is None or image.repo_tags or image.repo_digests:
                    continue
                if image_id in parents or self.containers.image_users(image_id):
                    continue
                sizes = {d: self.images.layer_size(d) for d in image.diff_ids}
                items = await self.images.delete(image_id, force=False, prune_children=True,
                                                 in_use_by=self.containers.image_users)
                removed.append(image_id)
                reclaimed += sum(sizes.get(i.deleted, 0) for i in items)
                progress = True
        return removed, reclaimed


def _clean_one(workspace: Path) -> None:
    for mounted in _mounts_under(workspace):
        mounts.unmount(mounted)
    shutil.rmtree(workspace, ignore_errors=True)


__all__ = ["BuildService"]
