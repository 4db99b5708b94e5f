"""Which images the store has and which names point at them.

`index/<image-hex>.json` holds one `IndexRecord` per image: it exists => the image is
complete. The `Image` itself is derived from its config blob at start-up.
`repositories.json` maps references (`docker.io/library/busybox:latest`) to image IDs
and is replaced atomically on every change. Changes happen under the image store's
lock; lookups follow Docker's rules (`resolve`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from engine import fsutil
from engine.errors import InvalidParameter, NotFound
from engine.images import ociconfig
from engine.images.blobstore import BlobStore, hex_of
from engine.images.layerstore import LayerStore
from engine.images.model import Image
from engine.images.reference import (
    Reference,
    is_full_id,
    looks_like_id,
    normalize_id,
    parse,
)
from engine.store import RecordStore

log = logging.getLogger(__name__)


@attrs.define
class IndexRecord:
    """What the store keeps per image besides the config blob."""

    id: str
    # deleted by the user while a container still uses it: kept for that container only
    hidden: bool = False
    last_tag_time: dt.datetime | None = None


_ImageList = list[Image]  # `list` below is a method: annotations in the class must not say list
_RefList = list[Reference]
_StrList = list[str]


class ImageCatalog:
    """Images by ID (hidden ones included), their index records, and the references."""

    def __init__(self, index_dir: Path, repositories_path: Path, *, blobs: BlobStore,
                 layers: LayerStore, durable: bool) -> None:
        self.index_dir = index_dir
        self.repositories_path = repositories_path
        self.durable = durable
        self._blobs = blobs
        self._layers = layers
        self._index: RecordStore[IndexRecord] = RecordStore(
            index_dir, IndexRecord, durable=durable
        )
        self._images: dict[str, Image] = {}
        self._records: dict[str, IndexRecord] = {}
        self._refs: dict[str, str] = {}  # full reference -> image ID

    # start-up --------------------------------------------------------------------
    def load_sync(self) -> None:
        """Read the images whose config blob and layers are intact, then their tags."""
        self._load_images()
        self._load_refs()

    def _load_images(self) -> None:
        for key, record in self._index.load_all().items():
            path = self.index_dir / f"{key}.json"
            try:
                data = self._blobs.read_verified_sync(key)
                image = ociconfig.image_from_config(data, image_id="sha256:" + key)
            except (OSError, ValueError, InvalidParameter) as exc:
                log.error("image %s is unreadable (%s); setting its record aside", key, exc)
                path.rename(path.with_suffix(".corrupt"))
                continue
            missing = [d for d in image.diff_ids if d not in self._layers]
            if missing:
                log.error("image %s lacks layers %s; setting its record aside", key, missing)
                path.rename(path.with_suffix(".corrupt"))
                continue
            image.size = sum(self._layers.size(d) for d in image.diff_ids)
            self._images[image.id] = image
            self._records[image.id] = record

    def _load_refs(self) -> None:
        try:
            raw = json.loads(self.repositories_path.read_bytes())
            refs = raw.get("references", {}) if isinstance(raw, dict) else {}
        except FileNotFoundError:
            refs = {}
        except ValueError as exc:
            log.error("%s is unreadable (%s); starting without tags", self.repositories_path, exc)
            self.repositories_path.rename(self.repositories_path.with_suffix(".corrupt"))
            refs = {}
        for name, image_id in refs.items():
            if image_id in self._images and not self._records[image_id].hidden:
                try:
                    ref = parse(name, default_tag=False)
                except InvalidParameter:
                    continue
                self._refs[ref.full_name()] = image_id
        for image_id in self._images:
            self._refresh_tags(image_id)

    # reading -----------------------------------------------------------------------
    def __contains__(self, image_id: str) -> bool:
        return image_id in self._images

    def get(self, image_id: str) -> Image | None:
        """The image with this full ID, including one deleted while a container uses it."""
        return self._images.get(normalize_id(image_id))

    def list(self) -> _ImageList:
        """Visible images, newest first (the order of `docker images`)."""
        visible = [img for i, img in self._images.items() if not self._records[i].hidden]
        return sorted(visible, key=lambda img: (img.created, img.id), reverse=True)

    def hidden(self) -> _StrList:
        """IDs of the images a forced removal hid (see `hide`)."""
        return [i for i, record in self._records.items() if record.hidden]

    def config_blobs(self) -> set[str]:
        """Hex names of the images' config blobs (an image's ID is its config's digest)."""
        return {hex_of(i) for i in self._images}

    def layers_needed(self) -> set[str]:
        """Diff IDs of the layers some image, hidden or not, lists."""
        return {d for img in self._images.values() for d in img.diff_ids}

    def resolve(self, name_or_id: str) -> Image:
        """Find an image as Docker does: full ID, then reference, then unique ID prefix.

        Raises NotFound(`No such image: <familiar>`): that 404 is what makes clients pull.
        """
        text = name_or_id
        if not text.strip():
            raise InvalidParameter("image name cannot be blank")
        if is_full_id(text):
            image = self.visible(normalize_id(text))
            if image is None:
                raise NotFound(f"No such image: {normalize_id(text)}")
            return image
        try:
            ref: Reference | None = parse(text)
        except InvalidParameter:
            if not looks_like_id(text):
                raise
            ref = None
        if ref is not None:
            image_id = self._refs.get(ref.full_name())
            if image_id is not None:
                image = self.visible(image_id)
                if image is not None:
                    return image
            if ref.digest is not None and ref.tag is None:
                image = self.visible(ref.digest)
                if image is not None:
                    return image
        if looks_like_id(text):
            found = self._by_prefix(hex_of(text))
            if found is not None:
                return found
        raise NotFound(f"No such image: {ref.familiar() if ref is not None else text}")

    def visible(self, image_id: str) -> Image | None:
        """The image with this full ID unless a forced removal hid it."""
        record = self._records.get(image_id)
        if record is None or record.hidden:
            return None
        return self._images[image_id]

    def _by_prefix(self, prefix: str) -> Image | None:
        matches = [
            img for i, img in self._images.items()
            if hex_of(i).startswith(prefix) and not self._records[i].hidden
        ]
        return matches[0] if len(matches) == 1 else None

    def references(self, image_id: str) -> _RefList:
        """The references (tags and digests) naming an image, sorted as Docker sorts them."""
        names = sorted(name for name, i in self._refs.items() if i == image_id)
        return [parse(name, default_tag=False) for name in names]

    def points_at(self, reference: Reference, image_id: str) -> bool:
        return self._refs.get(reference.full_name()) == image_id

    def last_tag_time(self, image_id: str) -> dt.datetime | None:
        record = self._records.get(image_id)
        return record.last_tag_time if record else None

    def is_dangling(self, image_id: str) -> bool:
        return not any(i == image_id for i in self._refs.values())

    def children(self, image_id: str) -> _StrList:
        """IDs of the visible images built on this one (their `parent`): a classic
        build's steps. A hidden image is no one's child: Docker would have deleted it."""
        return [i for i, img in self._images.items()
                if img.parent == image_id and not self._records[i].hidden]

    def _refresh_tags(self, image_id: str) -> None:
        image = self._images.get(image_id)
        if image is None:
            return
        refs = self.references(image_id)
        image.repo_tags = [r.familiar() for r in refs if r.digest is None]
        image.repo_digests = [
            f"{r.repository}@{r.digest}" for r in refs if r.digest is not None
        ]

    # images (the caller holds the store's lock) ----------------------------------------
    async def add(self, data: bytes) -> Image:
        """Record the image of a config blob whose layers are stored: blob, then index record.

        An image hidden by a forced removal becomes visible again.
        """
        image = ociconfig.image_from_config(data)
        existing = self._records.get(image.id)
        if existing is not None:
            if existing.hidden:
                existing.hidden = False
                await self._index.save(hex_of(image.id), existing)
            return self._images[image.id]
        await trio.to_thread.run_sync(self._blobs.write_config_sync, image.id, data)
        record = IndexRecord(id=image.id)
        await self._index.save(hex_of(image.id), record)  # from here on the image exists
        image.size = sum(self._layers.size(d) for d in image.diff_ids)
        self._images[image.id] = image
        self._records[image.id] = record
        return image

    async def hide(self, image_id: str) -> None:
        """Drop the image from every lookup but `get`: a container still uses it."""
        record = self._records[image_id]
        if not record.hidden:
            record.hidden = True
            await self._index.save(hex_of(image_id), record)

    async def forget(self, image_id: str) -> Image:
        """Delete the index record: from here on the image is gone (its files are not)."""
        image = self._images[image_id]
        await self._index.delete(hex_of(image_id))
        del self._images[image_id]
        del self._records[image_id]
        return image

    # references (the caller holds the store's lock) -----------------------------------
    async def tag(self, image_id: str, reference: Reference) -> None:
        """Point `reference` at the image, moving it from another, and note the time."""
        name = reference.full_name()
        previous = self._refs.get(name)
        self._refs[name] = image_id
        try:
            await self._save_refs()
        except BaseException:
            if previous is None:
                self._refs.pop(name, None)
            else:
                self._refs[name] = previous
            raise
        record = self._records[image_id]
        record.last_tag_time = dt.datetime.now(dt.UTC)
        await self._index.save(hex_of(image_id), record)
        self._refresh_tags(image_id)
        if previous is not None and previous != image_id:
            self._refresh_tags(previous)

    async def untag(self, refs: Sequence[Reference]) -> None:
        """Remove these references with one write of repositories.json."""
        touched = set()
        for ref in refs:
            image_id = self._refs.pop(ref.full_name(), None)
            if image_id is not None:
                touched.add(image_id)
        await self._save_refs()
        for image_id in touched:
            self._refresh_tags(image_id)

    async def _save_refs(self) -> None:
        doc = {"references": dict(sorted(self._refs.items()))}
        data = json.dumps(doc, indent=1).encode()
        await trio.to_thread.run_sync(
            lambda: fsutil.atomic_write(self.repositories_path, data, mode=0o644,
                                        durable=self.durable)
        )
