"""`docker save`: everything that can fail checked up front, then the archive streamed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import attrs
import trio

from engine.images.archive.formats import BLOCK
from engine.images.archive.layers import layer_chunks, layer_source
from engine.images.archive.layout import LayerSource, Member, layout, padding, tar_header
from engine.images.archive.selection import SavedImage, select_images
from engine.images.store import ImageStore


@attrs.define(eq=False)
class SavePlan:
    """An archive ready to stream: blobs verified, sizes known, metadata rendered."""

    store: ImageStore
    images: list[SavedImage]
    members: list[Member]

    @property
    def diff_ids(self) -> list[str]:
        return list(dict.fromkeys(d for s in self.images for d in s.image.diff_ids))

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The tar, member by member; use with `contextlib.aclosing`."""
        with self.store.pin_layers(self.diff_ids):
            for member in self.members:
                header = tar_header(member.name, member.size, directory=member.directory)
                if member.layer is None:
                    yield header + member.data + padding(len(member.data))
                    continue
                yield header
                async for piece in layer_chunks(member.layer):
                    yield piece
            yield b"\0" * (2 * BLOCK)


async def prepare_save(store: ImageStore, names: Sequence[str]) -> SavePlan:
    """Everything that can fail before the first byte: names, blobs, sizes.

    Errors here keep their status codes; afterwards only a disk changing under us can
    stop the stream, and then the archive is cut short rather than finished wrong.
    """
    images = select_images(store, names)
    diff_ids = list(dict.fromkeys(d for s in images for d in s.image.diff_ids))
    configs: dict[str, bytes] = {}
    layers: dict[str, LayerSource] = {}
    with store.pin_layers(diff_ids):
        for saved in images:
            path = await store.verified_blob(saved.image.id)
            configs[saved.image.id] = await trio.to_thread.run_sync(path.read_bytes)
        for diff_id in diff_ids:
            layers[diff_id] = await layer_source(store, diff_id)
    return SavePlan(store, images, layout(images, configs, layers))


__all__ = ["SavePlan", "prepare_save"]
