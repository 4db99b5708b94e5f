"""`--cache-from`: the images whose build steps a build may reuse, as dockerd decides.

Without `--cache-from` any image an earlier build made from the same parent and step
is reused (the local cache, `engine.build.cache`). With it, dockerd's classic builder
narrows that down and widens it:

* a locally cached step counts only when its image is one of the listed images or a
  parent of one (`allows`): `--cache-from nosuchimage` uses no cache at all;
* a listed image with no local chain (pulled from a registry, loaded from a tarball) is
  matched by its history (`continuing`): when it holds the parent's layers and history
  and its next history entry is the step's, the step is that entry, its layers taken
  from the listed image. Once a build has followed one listed image that way, it
  follows no other (dockerd's rule, so a build never mixes two images' layers).

Names that are not images are skipped, as dockerd skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.images.model import Image
    from engine.images.store import ImageStore


@attrs.define
class CacheSources:
    """The `--cache-from` images of one build, and every image in their parent chains."""

    images: list[Image]
    chain: set[str]

    @classmethod
    def resolve(cls, store: ImageStore, names: tuple[str, ...]) -> CacheSources:
        images: list[Image] = []
        chain: set[str] = set()
        for name in names:
            try:
                source = store.resolve(name)
            except EngineError:
                continue  # dockerd logs "Could not look up …" and goes on without it
            images.append(source)
            image: Image | None = source
            while image is not None and image.id not in chain:
                chain.add(image.id)
                image = store.get(image.parent) if image.parent else None
        return cls(images, chain)

    def allows(self, image_id: str) -> bool:
        """May a step cached locally as `image_id` be reused?"""
        return image_id in self.chain

    def continuing(self, parent: Image, created_by: str) -> tuple[Image, int] | None:
        """A listed image whose history goes on from `parent` with this step: the image
        and how many of its history entries the step's image keeps."""
        done = len(parent.history)
        for image in self.images:
            if (len(image.history) > done and len(image.diff_ids) >= len(parent.diff_ids)
                    and image.history[:done] == parent.history
                    and image.diff_ids[: len(parent.diff_ids)] == parent.diff_ids
                    and image.history[done].created_by == created_by):
                return image, done + 1
        return None

    def follow(self, image: Image) -> None:
        """From now on only `image` is followed by history (see `continuing`)."""
        self.images = [image]


def layers_in(image: Image, entries: int) -> list[str]:
    """The diff IDs of `image`'s first `entries` history entries (empty ones have none)."""
    count = sum(1 for h in image.history[:entries] if not h.empty_layer)
    return image.diff_ids[:count]


__all__ = ["CacheSources", "layers_in"]
