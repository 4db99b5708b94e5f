"""Which images `docker save` writes, and the tags each carries into the archive."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from engine.errors import InvalidParameter, NotFound
from engine.images.model import Image
from engine.images.reference import Reference, is_full_id, looks_like_id, parse
from engine.images.store import ImageStore


@attrs.frozen
class SavedImage:
    """One image going into an archive, with the tags it carries there."""

    image: Image
    tags: tuple[Reference, ...] = ()


def _resolve(store: ImageStore, name: str) -> Image:
    try:
        return store.resolve(name)
    except NotFound:
        raise NotFound(f"No such image: {name}") from None


def _repository_tags(store: ImageStore, ref: Reference) -> list[tuple[Image, Reference]]:
    """Every tag of `ref`'s repository, as Docker saves `docker save busybox`."""
    found = [
        (image, r)
        for image in store.list()
        for r in store.references(image.id)
        if r.digest is None and r.tag is not None and r.name == ref.name
    ]
    return sorted(found, key=lambda pair: pair[1].full_name())


def select_images(store: ImageStore, names: Sequence[str]) -> list[SavedImage]:
    """The images `names` ask for, in the order asked, and the tags to record.

    Docker's rules: `busybox:1` brings that tag only, a bare `busybox` every tag of the
    repository, an ID (or prefix) or a digest reference no tag at all.
    """
    if not names:
        raise InvalidParameter("no image names given: name at least one image to save")
    chosen: dict[str, tuple[Image, list[Reference]]] = {}

    def add(image: Image, ref: Reference | None) -> None:
        _, tags = chosen.setdefault(image.id, (image, []))
        if ref is not None and ref not in tags:
            tags.append(ref)

    for name in names:
        if not name.strip():
            raise InvalidParameter("image name cannot be blank")
        if is_full_id(name):
            add(_resolve(store, name), None)
            continue
        try:
            ref = parse(name, default_tag=False)
        except InvalidParameter:
            if not looks_like_id(name):
                raise
            add(_resolve(store, name), None)
            continue
        if ref.digest is not None or ref.repository == "sha256":
            add(_resolve(store, name), None)
        elif ref.tag is not None:
            add(_resolve(store, name), ref)
        else:
            tagged = _repository_tags(store, ref)
            if not tagged:
                add(_resolve(store, name), None)
            for image, tag in tagged:
                add(image, tag)
    return [SavedImage(image, tuple(tags)) for image, tags in chosen.values()]


__all__ = ["SavedImage", "select_images"]
