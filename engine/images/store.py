"""The image store: content-addressed blobs, layers unpacked once, tags, image records.

Layout under the store's root (`<data-root>/images`)::

    blobs/sha256/<hex>        config blobs and the layer tarballs they came from
    layers/<diffid-hex>/diff/ the unpacked layer (an overlayfs lower directory)
    layers/<diffid-hex>/size  bytes of file content in diff/
    layers/<diffid-hex>/blob  sha256 digest of the tarball that made it, if kept
    layers/<diffid-hex>/link  its short name: layers/l/<link> -> ../<diffid-hex>/diff
    index/<image-hex>.json    one per image: it exists => the image is complete
    repositories.json         reference (docker.io/library/busybox:latest) -> image ID
    tmp/                      uploads and unpacks in progress

Crash safety: everything becomes visible by a rename of something already durable,
in dependency order: blob, then layer directory, then config blob, then the index
record (the image exists from that instant), then the tag. Deletion goes the other
way. `open` throws away temporaries and anything no index record refers to, so a
`kill -9` at any instant leaves either the old or the new state.

`ImageStore` is the one door: it serialises changes with one lock and orders the
steps; the parts each keep one directory: `blobstore` (blobs/ and uploads),
`layerstore` and `layerlinks` (layers/), `catalog` (index/ and repositories.json),
`removal` (Docker's rules for rmi and prune, and deleting files in the background).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import trio

from engine import fsutil
from engine.errors import InvalidParameter, NotFound
from engine.images import ociconfig
from engine.images.blobstore import BlobStore, CorruptBlob
from engine.images.catalog import ImageCatalog, IndexRecord
from engine.images.changes import apply_changes
from engine.images.importer import import_config_blob, parse_platform
from engine.images.layerstore import LayerInfo, LayerStore
from engine.images.model import Image, ImageConfig
from engine.images.reference import Reference
from engine.images.removal import DeleteItem, ImageFilter, ImageRemover, ImageUsers, InUse
from engine.images.unpack import LayerStats

log = logging.getLogger(__name__)

_ImageList = list[Image]  # `list` below is a method: annotations in the class must not say list
_DeleteList = list[DeleteItem]
_RefList = list[Reference]
_PathList = list[Path]
_StrList = list[str]


class ImageStore:
    """Images on disk and in memory. Reads are synchronous; changes are serialised."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.tmp_dir = self.root / "tmp"
        self.index_dir = self.root / "index"
        self.repositories_path = self.root / "repositories.json"
        self._blobs = BlobStore(self.blobs_dir, self.tmp_dir, durable=durable)
        self._layers = LayerStore(self.layers_dir, self._blobs, durable=durable)
        self._catalog = ImageCatalog(self.index_dir, self.repositories_path,
                                     blobs=self._blobs, layers=self._layers, durable=durable)
        self._remover = ImageRemover(self._catalog, self._layers, self._blobs)
        self._lock = trio.Lock()

    # start-up ----------------------------------------------------------------
    @classmethod
    async def open(cls, root: Path, *, durable: bool = True) -> ImageStore:
        """Load the store at `root`, cleaning what a crash left half-done."""
        store = cls(root, durable=durable)
        await trio.to_thread.run_sync(store._load_sync)
        return store

    def _load_sync(self) -> None:
        for d in (self.blobs_dir, self.layers_dir, self.index_dir):
            d.mkdir(parents=True, exist_ok=True)
        fsutil.remove_tree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fsutil.clean_stale_temporaries(self.blobs_dir)
        fsutil.clean_stale_temporaries(self.root)
        self._layers.load_sync()
        self._catalog.load_sync()
        self._collect_unreferenced_sync()

    def _collect_unreferenced_sync(self) -> None:
        """Remove layers and blobs that no complete image needs (leftovers of crashes)."""
        self._layers.collect_unreferenced_sync(self._catalog.layers_needed())
        self._blobs.remove_unneeded_sync(self._catalog.config_blobs() | self._layers.kept_blobs())

    # reading -------------------------------------------------------------------
    def get(self, image_id: str) -> Image | None:
        """The image with this full ID, including one deleted while a container uses it."""
        return self._catalog.get(image_id)

    def list(self) -> _ImageList:
        """Visible images, newest first (the order of `docker images`)."""
        return self._catalog.list()

    def resolve(self, name_or_id: str) -> Image:
        """Find an image as Docker does: full ID, then reference, then unique ID prefix.

        Raises NotFound(`No such image: <familiar>`): that 404 is what makes clients pull.
        """
        return self._catalog.resolve(name_or_id)

    def references(self, image_id: str) -> _RefList:
        """The references (tags and digests) naming an image, sorted as Docker sorts them."""
        return self._catalog.references(image_id)

    def last_tag_time(self, image_id: str) -> dt.datetime | None:
        return self._catalog.last_tag_time(image_id)

    def is_dangling(self, image_id: str) -> bool:
        return self._catalog.is_dangling(image_id)

    def layer_dirs(self, image: Image) -> _PathList:
        """The unpacked layers of `image`, top layer first (overlayfs `lowerdir` order)."""
        return [self._layers.diff_dir(d) for d in reversed(image.diff_ids)]

    @property
    def links_dir(self) -> Path:
        """`layers/l/`: short names for the layers' diff/ directories (see `layer_links`)."""
        return self._layers.links.directory

    def layer_links(self, image: Image) -> _StrList:
        """`layer_dirs` as `l/<link>` paths relative to `layers_dir`: the mount's form.

        Short names keep 128 layers within overlayfs's one page of mount options
        (`engine.images.layerlinks` says why). `mounts.mount_overlay` resolves them
        from `layers_dir`.
        """
        return self._layers.lower_links(image.diff_ids)

    def layer_size(self, diff_id: str) -> int:
        return self._layers.size(diff_id)

    def layers_size(self, image: Image) -> int:
        """`docker images` Size: the bytes of the image's layers."""
        return sum(self.layer_size(d) for d in image.diff_ids)

    def has_layer(self, diff_id: str) -> bool:
        return diff_id in self._layers

    def layer_blob(self, diff_id: str) -> str | None:
        """Digest of the tarball a layer was unpacked from, if the store still has it."""
        info = self._layers.get(diff_id)
        return info.blob if info else None

    def pin_layers(self, diff_ids: Iterable[str]) -> AbstractContextManager[None]:
        """Keep these layers while an image that needs them is being put together.

        A pull or load ingests layers before it records the image; without the pin a
        concurrent `rmi` of another image sharing a layer would delete it in between.
        """
        return self._layers.pin(diff_ids)

    def blob_path(self, digest: str) -> Path:
        return self._blobs.path(digest)

    def tmp_path(self, prefix: str) -> Path:
        """A fresh name under the store's tmp/ (same filesystem as blobs and layers)."""
        return self.tmp_dir / f"{prefix}{secrets.token_hex(8)}"

    # blobs ---------------------------------------------------------------------
    async def verified_blob(self, digest: str) -> Path:
        """The path of a stored blob, after checking its bytes against its digest.

        A blob that no longer matches (disk corruption, tampering) is deleted and the
        layer forgets it, so it is never sent anywhere and the next pull refetches it;
        the caller gets `CorruptBlob`.
        """
        path = self.blob_path(digest)
        try:
            intact = await self._blobs.intact(digest)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None
        if intact:
            return path
        log.error("blob %s does not match its digest; removing it", digest)
        async with self._lock:
            orphaned = self._layers.forget_blob(digest)

            def forget() -> None:
                self._layers.unlink_blob_files_sync(orphaned)
                path.unlink(missing_ok=True)

            await trio.to_thread.run_sync(forget)
        raise CorruptBlob(
            f"blob {digest} is corrupt on disk (its content no longer matches its digest); "
            "it has been removed: pull the image again to restore it"
        )

    async def write_blob(self, chunks: AsyncIterable[bytes], *, expected: str | None = None
                         ) -> tuple[str, int]:
        """Store a blob (verified against `expected` if given): (digest, size).

        A blob nothing refers to is removed at the next start-up; callers reference it
        from a layer or an image before then.
        """
        return await self._blobs.write(chunks, expected=expected)

    # layers --------------------------------------------------------------------
    async def ingest_layer(self, tarball: Path, *, blob_digest: str | None,
                           expected_diff_id: str | None) -> LayerStats:
        """Unpack a received layer tarball and make it a layer; the tarball is consumed.

        `blob_digest` keeps the tarball as that blob (for push and save); the caller has
        verified it. `expected_diff_id` is what the image config says: a layer whose
        uncompressed content hashes otherwise is refused, so a registry or archive
        cannot smuggle different files under an image ID.
        """
        staging: Path | None = None
        try:
            staged, stats = await trio.to_thread.run_sync(
                self._layers.unpack_sync, tarball, blob_digest
            )
            staging = staged
            if expected_diff_id is not None and stats.diff_id != expected_diff_id:
                raise InvalidParameter(
                    f"layer content does not match the image: expected diff ID "
                    f"{expected_diff_id}, got {stats.diff_id}"
                )
            async with self._lock:
                info = await trio.to_thread.run_sync(
                    self._layers.commit_sync, staged, stats, tarball, blob_digest
                )
                staging = None
                self._layers.add(stats.diff_id, info)
            return stats
        finally:
            with trio.CancelScope(shield=True):
                leftover = staging
                await trio.to_thread.run_sync(self._cleanup_sync, tarball, leftover)

    @staticmethod
    def _cleanup_sync(tarball: Path, staging: Path | None) -> None:
        tarball.unlink(missing_ok=True)
        if staging is not None:
            fsutil.remove_tree(staging)

    async def keep_blob(self, diff_id: str, tarball: Path, blob_digest: str) -> None:
        """Give a layer that lost its tarball (a corrupt blob set aside) a verified one."""
        async with self._lock:
            info = self._layers.get(diff_id)
            if info is None or info.blob is not None:
                await trio.to_thread.run_sync(lambda: tarball.unlink(missing_ok=True))
                return
            await trio.to_thread.run_sync(
                self._layers.keep_blob_sync, diff_id, tarball, blob_digest
            )
            info.blob = blob_digest

    async def discard_layers(self, diff_ids: Iterable[str]) -> _StrList:
        """Remove layers a failed pull or load ingested, unless something needs them now.

        Without this they would stay unreferenced until the next start. Layers an image
        uses or a pin holds (another pull or load still assembling its image) stay, so
        call it after releasing your own pin. Returns the diff IDs removed.
        """
        async with self._lock:
            return await self._remover.discard_layers(diff_ids)

    # creating images ---------------------------------------------------------
    async def import_rootfs(
        self,
        chunks: AsyncIterable[bytes],
        *,
        reference: Reference | None,
        changes: Sequence[str],
        message: str,
        platform: str = "",
    ) -> Image:
        """`docker import`: one tarball (plain or compressed) becomes a one-layer image."""
        plat = parse_platform(platform)
        config = apply_changes(ImageConfig(), changes)  # bad changes fail before the upload
        if reference is not None and (reference.digest is not None or reference.tag is None):
            raise InvalidParameter("cannot import digest reference")
        tarball, blob_digest, _ = await self._blobs.receive(chunks)
        staging: Path | None = None
        try:
            staged, stats = await trio.to_thread.run_sync(
                self._layers.unpack_sync, tarball, blob_digest
            )
            staging = staged
            data = import_config_blob(
                config=config,
                diff_id=stats.diff_id,
                message=message,
                platform=plat,
                created=dt.datetime.now(dt.UTC),
            )
            async with self._lock:
                info = await trio.to_thread.run_sync(
                    self._layers.commit_sync, staged, stats, tarball, blob_digest
                )
                staging = None
                self._layers.add(stats.diff_id, info)
                image = await self._catalog.add(data)
                if reference is not None:
                    await self._catalog.tag(image.id, reference)
            return image
        finally:
            with trio.CancelScope(shield=True):
                leftover = staging
                await trio.to_thread.run_sync(self._cleanup_sync, tarball, leftover)

    async def add_image(self, config_blob: bytes) -> Image:
        """Record an image whose layers are all in the store already (pulls, loads, commits)."""
        image = ociconfig.image_from_config(config_blob)
        missing = [d for d in image.diff_ids if d not in self._layers]
        if missing:
            raise InvalidParameter(f"image {image.id} needs layers not in the store: {missing}")
        async with self._lock:
            return await self._catalog.add(config_blob)

    # tags ----------------------------------------------------------------------
    async def tag(self, source: str, reference: Reference) -> None:
        """Point `reference` at the image `source` names (moving it if it named another)."""
        image = self.resolve(source)
        if reference.digest is not None or reference.tag is None:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if reference.repository == "sha256":
            raise InvalidParameter(
                "refusing to create an ambiguous tag using digest algorithm as name"
            )
        async with self._lock:
            if self._catalog.visible(image.id) is None:
                raise NotFound(f"No such image: {source}")
            await self._catalog.tag(image.id, reference)

    async def add_reference(self, image_id: str, reference: Reference) -> None:
        """Point a tag or digest reference at an image (pulls record `repo@digest` too)."""
        async with self._lock:
            if image_id not in self._catalog:
                raise NotFound(f"No such image: {image_id}")
            if self._catalog.points_at(reference, image_id):
                return  # already so: no rewrite (a cached rebuild tags the same image again)
            await self._catalog.tag(image_id, reference)

    # deleting ------------------------------------------------------------------
    async def delete(
        self,
        name_or_id: str,
        *,
        force: bool,
        prune_children: bool,
        in_use_by: ImageUsers,
    ) -> _DeleteList:
        """`docker rmi`, with Docker's rules (see docs/images.md).

        By reference: untag; the image goes when its last reference does. By ID: the
        image goes with all its tags, unless they span repositories (needs force).
        Containers using the image block the removal (stopped: unless forced; running:
        always, though a forced untag is allowed), and so do images built on it (always).
        With `prune_children` (the API's default; `noprune=1` turns it off) the image's
        untagged parents go too, as far as nothing else holds them: a classic build's
        intermediate images leave with the image they made.
        """
        async with self._lock:
            return await self._remover.delete(name_or_id, force=force, prune=prune_children,
                                              in_use_by=in_use_by)

    async def prune(
        self,
        *,
        dangling_only: bool,
        in_use: InUse,
        select: ImageFilter | None = None,
    ) -> tuple[_DeleteList, int]:
        """`docker image prune [-a]`: remove unused images; (deleted items, bytes reclaimed).

        Dangling only: images without tags. Otherwise every image no container uses.
        An image's untagged parents go with it (a build's intermediate images).
        `select` narrows the candidates (the API's `until` and `label` filters).
        Images hidden by a forced removal go too once no container uses them.
        """
        async with self._lock:
            return await self._remover.prune(dangling_only=dangling_only, in_use=in_use,
                                             select=select)

    async def gc(self, in_use: InUse) -> int:
        """Drop images hidden by a forced removal once no container uses them; bytes freed.

        The container manager calls this after removing a container.
        """
        async with self._lock:
            return await self._remover.gc(in_use)

    async def drain(self) -> None:
        """Wait until files of removed images are deleted (tests; disk accounting)."""
        await self._remover.drain()


__all__ = [
    "CorruptBlob",
    "DeleteItem",
    "ImageFilter",
    "ImageStore",
    "ImageUsers",
    "InUse",
    "IndexRecord",
    "LayerInfo",
]
