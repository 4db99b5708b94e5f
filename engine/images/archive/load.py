"""`docker load`: a checked archive's images into the store, with their tags."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from pathlib import Path

import attrs
import trio

from engine.errors import InvalidParameter, NotFound
from engine.images.archive.contents import LayerRef, read_images
from engine.images.archive.extract import extract_layer, plain_tar, remove_files, spool
from engine.images.archive.layers import SIZES
from engine.images.reference import Reference
from engine.images.store import ImageStore

log = logging.getLogger(__name__)


@attrs.frozen
class LoadedTag:
    """A tag a load set, and the image it was taken from (Docker reports that)."""

    name: str  # familiar: busybox:latest
    previous: str | None = None


@attrs.frozen
class LoadedImage:
    """What loading one image did, for the lines `docker load` prints."""

    image_id: str
    tags: tuple[LoadedTag, ...] = ()
    # layers unpacked for it: (diff ID, bytes of the tar); layers already stored are skipped
    new_layers: tuple[tuple[str, int], ...] = ()


def _tag_target(store: ImageStore, ref: Reference) -> str | None:
    try:
        return store.resolve(ref.full_name()).id
    except (NotFound, InvalidParameter):
        return None


async def _roll_back(store: ImageStore, diff_ids: list[str]) -> None:
    """Drop the layers a failed load unpacked; never hide the failure behind our own."""
    if not diff_ids:
        return
    try:
        await store.discard_layers(diff_ids)
    except Exception:
        log.exception("cannot remove the layers of a failed load; the next start will")


async def load_archive(store: ImageStore, chunks: AsyncIterable[bytes]) -> list[LoadedImage]:
    """`docker load`: every image of the archive into the store, with its tags.

    All checks (structure, digests, diff IDs) run before the store is touched. Layers
    already stored are skipped (one whose tarball was set aside as corrupt gets the
    archive's back, so it can be saved and pushed again); all are pinned while the
    images are recorded. If the load fails, the layers it unpacked that no image ended
    up using are removed again rather than left for the next daemon start.
    """
    temporaries = [await spool(store, chunks), store.tmp_path("load-")]
    sizes: dict[str, int] = {}  # layers this load unpacked: bytes of their tar
    try:
        tar = await trio.to_thread.run_sync(plain_tar, temporaries[0], temporaries[1])
        archive, loadables = await trio.to_thread.run_sync(read_images, tar)
        diff_ids = list(dict.fromkeys(d for item in loadables for d in item.image.diff_ids))
        with store.pin_layers(diff_ids):
            needed: dict[str, tuple[LayerRef, str]] = {}
            for item in loadables:
                for diff_id, layer in zip(item.image.diff_ids, item.layers, strict=True):
                    lacking = not store.has_layer(diff_id) or store.layer_blob(diff_id) is None
                    if lacking and diff_id not in needed:
                        needed[diff_id] = (layer, item.image.id)
            extracted: dict[str, tuple[Path, str]] = {}
            for diff_id, (layer, _) in needed.items():
                dest = store.tmp_path("layer-")
                temporaries.append(dest)
                blob = await trio.to_thread.run_sync(
                    extract_layer, archive.path, layer, diff_id, dest)
                extracted[diff_id] = (dest, blob)
            await trio.to_thread.run_sync(remove_files, temporaries[:2])  # free the disk early
            for diff_id, (dest, blob) in extracted.items():
                if store.has_layer(diff_id):  # lost its tarball, or a concurrent load was first
                    await store.keep_blob(diff_id, dest, blob)
                    continue
                stats = await store.ingest_layer(dest, blob_digest=blob, expected_diff_id=diff_id)
                sizes[diff_id] = stats.tar_size
                if blob != diff_id:  # spare a later save its measuring pass
                    SIZES.put(blob, stats.tar_size)
            results = []
            for item in loadables:
                image = await store.add_image(item.config)
                tags = []
                for ref in item.tags:
                    previous = _tag_target(store, ref)
                    await store.add_reference(image.id, ref)
                    moved = previous if previous not in (None, image.id) else None
                    tags.append(LoadedTag(ref.familiar(), moved))
                new = tuple((d, sizes[d]) for d, (_, owner) in needed.items()
                            if owner == image.id and d in sizes)
                results.append(LoadedImage(image.id, tuple(tags), new))
            return results
    except BaseException:
        with trio.CancelScope(shield=True):  # our pin is released: others' still hold
            await _roll_back(store, list(sizes))
        raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(remove_files, temporaries)


__all__ = ["LoadedImage", "LoadedTag", "load_archive"]
