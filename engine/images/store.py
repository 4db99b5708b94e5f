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
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import attrs
import trio

from engine import fsutil
from engine.batching import write_in_batches
from engine.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from engine.images import ociconfig
from engine.images.changes import apply_changes
from engine.images.importer import import_config_blob, parse_platform
from engine.images.model import Image, ImageConfig
from engine.images.reference import (
    Reference,
    is_full_id,
    is_id_prefix,
    looks_like_id,
    normalize_id,
    parse,
)
from engine.images.unpack import LayerStats, unpack_layer
from engine.store import RecordStore

log = logging.getLogger(__name__)

ImageUsers = Callable[[str], Sequence[tuple[str, bool]]]
"""`image_id -> [(container_id, running), …]`: the containers made from an image.

The container manager's `image_users` has this shape; image deletion needs to tell
running users (a hard conflict) from stopped ones (forcible)."""

InUse = Callable[[str], bool]
"""`image_id -> bool`: whether any container, running or not, uses the image."""

ImageFilter = Callable[[Image], bool]

_HEX64 = re.compile(r"^[a-f0-9]{64}\Z")
_LINK_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32: safe in overlay options
_LINK_LENGTH = 12  # 60 random bits; 128 layers then take 1920 bytes of the mount options
_LINK_NAME = re.compile(r"^[A-Z2-7]{8,26}\Z")
_WRITE_BATCH = 4 * 1024 * 1024


def _delete_paths(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            fsutil.remove_tree(path)
        else:
            path.unlink(missing_ok=True)


class CorruptBlob(SystemFailure):
    """A stored blob no longer matches its digest: it has been set aside, never used."""


@attrs.frozen
class DeleteItem:
    """One line of `docker rmi` output: exactly one of the two is set."""

    untagged: str = ""
    deleted: str = ""


@attrs.define
class IndexRecord:
    """What the store keeps per image besides the config blob."""

    id: str
    # deleted by the user while a container still uses it: kept for that container only
    hidden: bool = False
    last_tag_time: dt.datetime | None = None


@attrs.define
class LayerInfo:
    size: int
    blob: str | None = None
    link: str = ""  # short name of layers/l/<link> -> ../<diffid-hex>/diff


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding `path`: one call instead of an fsync per unpacked file."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def _is_single_reference(refs: Sequence[Reference]) -> bool:
    """Docker's rule: all references in one repository, at most one of them a tag."""
    if len(refs) <= 1:
        return len(refs) == 1
    single: Reference | None = None
    canonical: set[str] = set()
    for ref in refs:
        if ref.digest is not None:
            canonical.add(ref.name)
        elif single is None:
            single = ref
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical


@attrs.define
class _DeleteConflict:
    image_id: str
    hard: bool
    used: bool
    message: str

    def error(self) -> Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        short = _hex(self.image_id)[:12]
        return Conflict(f"conflict: unable to delete {short} ({force}) - {self.message}")


_ImageList = list[Image]
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
        self._index: RecordStore[IndexRecord] = RecordStore(
            self.index_dir, IndexRecord, durable=durable
        )
        self._images: dict[str, Image] = {}
        self._records: dict[str, IndexRecord] = {}
        self._refs: dict[str, str] = {}  # full reference -> image ID
        self._layers: dict[str, LayerInfo] = {}  # diff ID -> info
        self._pinned: Counter[str] = Counter()  # diff IDs an unfinished pull or load needs
        self._lock = trio.Lock()
        self._reaping = 0  # background deletions of removed layers and blobs in flight
        self._reaped = trio.Event()

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
        for entry in self.layers_dir.iterdir():
            if entry.name.startswith("."):  # .tmp-* (unpack) or .del-* (removal) in progress
                log.info("removing unfinished layer directory %s", entry)
                fsutil.remove_tree(entry)
        self._layers = self._scan_layers()
        self._load_images()
        self._load_refs()
        self._collect_unreferenced()

    def _scan_layers(self) -> dict[str, LayerInfo]:
        """Read the layers; give a layer without a working short link one, drop stray links.

        A crash between creating a link and renaming its staged layer visible leaves
        a dangling link in `l/`; layers made before links existed have none.
        """
        layers: dict[str, LayerInfo] = {}
        self.links_dir.mkdir(exist_ok=True)
        for entry in self.layers_dir.iterdir():
            if not _HEX64.match(entry.name):
                continue
            try:
                size = int((entry / "size").read_text().strip())
                blob_file = entry / "blob"
                blob = blob_file.read_text().strip() if blob_file.exists() else None
            except (OSError, ValueError):
                log.error("layer %s is incomplete; removing it", entry)
                fsutil.remove_tree(entry)
                continue
            if not (entry / "diff").is_dir():
                log.error("layer %s has no diff directory; removing it", entry)
                fsutil.remove_tree(entry)
                continue
            layers["sha256:" + entry.name] = LayerInfo(size, blob or None,
                                                       self._repair_link_sync(entry.name))
        wanted = {info.link for info in layers.values()}
        stray = [e for e in self.links_dir.iterdir() if e.name not in wanted]
        for link in stray:
            log.info("removing stray layer link %s", link)
            if link.is_dir() and not link.is_symlink():
                fsutil.remove_tree(link)
            else:
                link.unlink(missing_ok=True)
        if stray and self.durable:
            fsutil.fsync_dir(self.links_dir)
        return layers

    def _load_images(self) -> None:
        for key, record in self._index.load_all().items():
            path = self.index_dir / f"{key}.json"
            try:
                data = (self.blobs_dir / key).read_bytes()
                if hashlib.sha256(data).hexdigest() != key:
                    raise ValueError("config blob does not match its digest")
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
            image.size = sum(self._layers[d].size for d in image.diff_ids)
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

    def _collect_unreferenced(self) -> None:
        """Remove layers and blobs that no complete image needs (leftovers of crashes)."""
        needed_layers = {d for img in self._images.values() for d in img.diff_ids}
        for diff_id in list(self._layers):
            if diff_id not in needed_layers:
                log.info("removing unreferenced layer %s", diff_id)
                self._remove_layer_dir_sync(diff_id)
                del self._layers[diff_id]
        needed_blobs = {_hex(i) for i in self._images}
        needed_blobs |= {_hex(info.blob) for info in self._layers.values() if info.blob}
        removed = False
        for entry in self.blobs_dir.iterdir():
            if entry.name not in needed_blobs:
                log.info("removing unreferenced blob %s", entry.name)
                entry.unlink()
                removed = True
        if removed and self.durable:
            fsutil.fsync_dir(self.blobs_dir)

    # reading -------------------------------------------------------------------
    def get(self, image_id: str) -> Image | None:
        """The image with this full ID, including one deleted while a container uses it."""
        return self._images.get(normalize_id(image_id))

    def list(self) -> _ImageList:
        """Visible images, newest first (the order of `docker images`)."""
        visible = [img for i, img in self._images.items() if not self._records[i].hidden]
        return sorted(visible, key=lambda img: (img.created, img.id), reverse=True)

    def resolve(self, name_or_id: str) -> Image:
        """Find an image as Docker does: full ID, then reference, then unique ID prefix.

        Raises NotFound(`No such image: <familiar>`): that 404 is what makes clients pull.
        """
        text = name_or_id
        if not text.strip():
            raise InvalidParameter("image name cannot be blank")
        if is_full_id(text):
            image = self._visible(normalize_id(text))
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
                image = self._visible(image_id)
                if image is not None:
                    return image
            if ref.digest is not None and ref.tag is None:
                image = self._visible(ref.digest)
                if image is not None:
                    return image
        if looks_like_id(text):
            found = self._by_prefix(_hex(text))
            if found is not None:
                return found
        raise NotFound(f"No such image: {ref.familiar() if ref is not None else text}")

    def _visible(self, image_id: str) -> Image | None:
        record = self._records.get(image_id)
        if record is None or record.hidden:
            return None
        return self._images[image_id]

    def _by_prefix(self, prefix: str) -> Image | None:
        matches = [
            img for i, img in self._images.items()
            if _hex(i).startswith(prefix) and not self._records[i].hidden
        ]
        return matches[0] if len(matches) == 1 else None

    def references(self, image_id: str) -> _RefList:
        """The references (tags and digests) naming an image, sorted as Docker sorts them."""
        names = sorted(name for name, i in self._refs.items() if i == image_id)
        return [parse(name, default_tag=False) for name in names]

    def last_tag_time(self, image_id: str) -> dt.datetime | None:
        record = self._records.get(image_id)
        return record.last_tag_time if record else None

    def is_dangling(self, image_id: str) -> bool:
        return not any(i == image_id for i in self._refs.values())

    def layer_dirs(self, image: Image) -> _PathList:
        """The unpacked layers of `image`, top layer first (overlayfs `lowerdir` order)."""
        return [self.layers_dir / _hex(d) / "diff" for d in reversed(image.diff_ids)]

    def layer_size(self, diff_id: str) -> int:
        info = self._layers.get(diff_id)
        return info.size if info else 0

    def layers_size(self, image: Image) -> int:
        """`docker images` Size: the bytes of the image's layers."""
        return sum(self.layer_size(d) for d in image.diff_ids)

    def has_layer(self, diff_id: str) -> bool:
        return diff_id in self._layers

    def layer_blob(self, diff_id: str) -> str | None:
        """Digest of the tarball a layer was unpacked from, if the store still has it."""
        info = self._layers.get(diff_id)
        return info.blob if info else None

    @contextmanager
    def pin_layers(self, diff_ids: Iterable[str]) -> Iterator[None]:
        """Keep these layers while an image that needs them is being put together.

        A pull or load ingests layers before it records the image; without the pin a
        concurrent `rmi` of another image sharing a layer would delete it in between.
        """
        pinned = list(diff_ids)
        self._pinned.update(pinned)
        try:
            yield
        finally:
            self._pinned.subtract(pinned)
            self._pinned += Counter()  # drop zero counts

    async def verified_blob(self, digest: str) -> Path:
        """The path of a stored blob, after checking its bytes against its digest.

        A blob that no longer matches (disk corruption, tampering) is deleted and the
        layer forgets it, so it is never sent anywhere and the next pull refetches it;
        the caller gets `CorruptBlob`.
        """
        path = self.blob_path(digest)

        def check() -> bool:
            hasher = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_WRITE_BATCH):
                    hasher.update(chunk)
            return "sha256:" + hasher.hexdigest() == digest

        try:
            intact = await trio.to_thread.run_sync(check)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None
        if intact:
            return path
        log.error("blob %s does not match its digest; removing it", digest)
        async with self._lock:
            orphaned = [d for d, info in self._layers.items() if info.blob == digest]
            for diff_id in orphaned:
                self._layers[diff_id].blob = None

            def forget() -> None:
                for diff_id in orphaned:
                    (self.layers_dir / _hex(diff_id) / "blob").unlink(missing_ok=True)
                path.unlink(missing_ok=True)

            await trio.to_thread.run_sync(forget)
        raise CorruptBlob(
            f"blob {digest} is corrupt on disk (its content no longer matches its digest); "
            "it has been removed: pull the image again to restore it"
        )

    def blob_path(self, digest: str) -> Path:
        if not digest.startswith("sha256:") or not _HEX64.match(_hex(digest)):
            raise InvalidParameter(f"invalid digest {digest!r}")
        return self.blobs_dir / _hex(digest)

    def _refresh_tags(self, image_id: str) -> None:
        image = self._images.get(image_id)
        if image is None:
            return
        refs = self.references(image_id)
        image.repo_tags = [r.familiar() for r in refs if r.digest is None]
        image.repo_digests = [
            f"{r.repository}@{r.digest}" for r in refs if r.digest is not None
        ]

    # receiving ---------------------------------------------------------------
    async def _receive(self, chunks: AsyncIterable[bytes]) -> tuple[Path, str, int]:
        """Stream `chunks` to a temporary file, hashing as it goes: (path, digest, size)."""
        fd, name = await trio.to_thread.run_sync(
            lambda: tempfile.mkstemp(prefix="upload-", dir=self.tmp_dir)
        )
        path = Path(name)
        hasher = hashlib.sha256()
        f = os.fdopen(fd, "wb")

        def write(data: bytes) -> None:
            hasher.update(data)
            f.write(data)

        def finish() -> None:
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
            f.close()

        try:
            size = await write_in_batches(chunks, write)
            await trio.to_thread.run_sync(finish)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._discard_upload, f, path)
            raise
        return path, "sha256:" + hasher.hexdigest(), size

    @staticmethod
    def _discard_upload(f: object, path: Path) -> None:
        close = getattr(f, "close", None)
        if close is not None:
            close()
        path.unlink(missing_ok=True)

    async def write_blob(self, chunks: AsyncIterable[bytes], *, expected: str | None = None
                         ) -> tuple[str, int]:
        """Store a blob (verified against `expected` if given): (digest, size).

        A blob nothing refers to is removed at the next start-up; callers reference it
        from a layer or an image before then.
        """
        path, digest, size = await self._receive(chunks)
        try:
            if expected is not None and digest != expected:
                raise InvalidParameter(
                    f"blob digest mismatch: expected {expected}, got {digest}"
                )
            await trio.to_thread.run_sync(self._commit_blob_sync, path, digest)
        finally:
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        return digest, size

    def _commit_blob_sync(self, tmp: Path, digest: str) -> None:
        final = self.blob_path(digest)
        if final.exists():
            return
        os.chmod(tmp, 0o644)
        os.rename(tmp, final)
        if self.durable:
            fsutil.fsync_dir(self.blobs_dir)

    # layers ------------------------------------------------------------------
    @property
    def links_dir(self) -> Path:
        """`layers/l/`: short names for the layers' diff/ directories (see `layer_links`)."""
        return self.layers_dir / "l"

    def layer_links(self, image: Image) -> _StrList:
        """`layer_dirs` as `l/<link>` paths relative to `layers_dir`: the mount's form.

        Overlayfs takes its options in one page (4096 bytes): absolute lowerdirs (~90
        bytes each here) overflow it near 40 layers, these 15-byte ones fit 128 with
        room to spare, as in Docker's overlay2. `mounts.mount_overlay` resolves them
        from `layers_dir`. A layer without a link (never after `open`) falls back to its
        absolute path, which resolves the same from any directory.
        """
        lowers: _StrList = []
        for diff_id in reversed(image.diff_ids):
            info = self._layers.get(diff_id)
            if info is not None and info.link:
                lowers.append(f"{self.links_dir.name}/{info.link}")
            else:
                lowers.append(str(self.layers_dir / _hex(diff_id) / "diff"))
        return lowers

    def _make_link_sync(self, hexid: str) -> str:
        """Create `l/<new random name>` -> `../<hexid>/diff`; the caller makes it durable."""
        self.links_dir.mkdir(exist_ok=True)
        while True:
            name = "".join(secrets.choice(_LINK_CHARS) for _ in range(_LINK_LENGTH))
            try:
                os.symlink(f"../{hexid}/diff", self.links_dir / name)
            except FileExistsError:
                continue
            return name

    def _repair_link_sync(self, hexid: str) -> str:
        """The layer's link name, after making sure `l/<name>` exists and points at it."""
        layer = self.layers_dir / hexid
        target = f"../{hexid}/diff"
        try:
            name = (layer / "link").read_text().strip()
        except OSError:
            name = ""
        if _LINK_NAME.match(name):
            link = self.links_dir / name
            try:
                if os.readlink(link) == target:
                    return name
            except FileNotFoundError:
                try:
                    os.symlink(target, link)
                except FileExistsError:
                    pass
                else:
                    log.info("recreated the missing link %s of layer %s", link, hexid)
                    if self.durable:
                        fsutil.fsync_dir(self.links_dir)
                    return name
            except OSError:
                pass  # something else is there: the stray sweep removes it
        name = self._make_link_sync(hexid)
        log.info("layer %s gets the short link %s", hexid, name)
        if self.durable:
            fsutil.fsync_dir(self.links_dir)
        fsutil.atomic_write(layer / "link", f"{name}\n".encode(), mode=0o644,
                            durable=self.durable)
        return name

    def _unpack_sync(self, tarball: Path, blob_digest: str | None) -> tuple[Path, LayerStats]:
        """Unpack into layers/.tmp-<random>/ with its size and blob files: not yet visible."""
        staging = self.layers_dir / f".tmp-{secrets.token_hex(8)}"
        staging.mkdir()
        try:
            with open(tarball, "rb") as f:
                stats = unpack_layer(f, staging / "diff")
            (staging / "size").write_text(f"{stats.content_size}\n")
            if blob_digest is not None:
                (staging / "blob").write_text(f"{blob_digest}\n")
        except BaseException:
            fsutil.remove_tree(staging)
            raise
        return staging, stats

    def _commit_layer_sync(self, staging: Path, stats: LayerStats, tarball: Path | None,
                           blob_digest: str | None) -> LayerInfo:
        """Make a staged layer visible (or drop it if the same layer already is)."""
        final = self.layers_dir / _hex(stats.diff_id)
        existing = self._layers.get(stats.diff_id)
        if existing is not None and final.is_dir():
            fsutil.remove_tree(staging)
            if existing.blob is None and tarball is not None and blob_digest is not None:
                self._commit_blob_sync(tarball, blob_digest)
                fsutil.atomic_write(final / "blob", f"{blob_digest}\n".encode(),
                                    mode=0o644, durable=self.durable)
                existing.blob = blob_digest
            return existing
        if tarball is not None and blob_digest is not None:
            self._commit_blob_sync(tarball, blob_digest)
        if final.exists():  # a leftover no record knew of: replace it
            self._remove_layer_dir_sync(stats.diff_id)
        # the link dangles until the rename; a crash before it leaves a stray `open` drops
        link = self._make_link_sync(_hex(stats.diff_id))
        (staging / "link").write_text(f"{link}\n")
        if self.durable:
            _syncfs(staging)
        os.rename(staging, final)
        if self.durable:
            fsutil.fsync_dir(self.layers_dir)
        return LayerInfo(stats.content_size, blob_digest, link)

    def _remove_layer_dir_sync(self, diff_id: str) -> None:
        """Rename first, then delete: a half-deleted layer is never mistaken for a layer."""
        doomed = self._hide_layer_dir_sync(diff_id, durable=self.durable)
        if doomed is not None:
            fsutil.remove_tree(doomed)

    def _hide_layer_dir_sync(self, diff_id: str, *, durable: bool) -> Path | None:
        """Rename the layer's directory out of sight and drop its short link (dangling
        now; after a crash between the two, `open` drops it); where the directory went,
        or None if there was none. `durable`: the rename is synced before the link goes."""
        final = self.layers_dir / _hex(diff_id)
        if not final.exists():
            return None
        try:
            link = (final / "link").read_text().strip()
        except OSError:
            link = ""
        doomed = self.layers_dir / f".del-{_hex(diff_id)[:12]}-{secrets.token_hex(4)}"
        os.rename(final, doomed)
        if durable:
            fsutil.fsync_dir(self.layers_dir)
        if _LINK_NAME.match(link):
            with suppress(OSError):
                if os.readlink(self.links_dir / link) == f"../{_hex(diff_id)}/diff":
                    os.unlink(self.links_dir / link)
        return doomed

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
            staged, stats = await trio.to_thread.run_sync(self._unpack_sync, tarball, blob_digest)
            staging = staged
            if expected_diff_id is not None and stats.diff_id != expected_diff_id:
                raise InvalidParameter(
                    f"layer content does not match the image: expected diff ID "
                    f"{expected_diff_id}, got {stats.diff_id}"
                )
            async with self._lock:
                info = await trio.to_thread.run_sync(
                    self._commit_layer_sync, staged, stats, tarball, blob_digest
                )
                staging = None
                self._layers[stats.diff_id] = info
            return stats
        finally:
            with trio.CancelScope(shield=True):
                leftover = staging
                await trio.to_thread.run_sync(self._cleanup_sync, tarball, leftover)

    async def keep_blob(self, diff_id: str, tarball: Path, blob_digest: str) -> None:
        """Give a layer that lost its tarball (a corrupt blob set aside) a verified one."""
        async with self._lock:
            info = self._layers.get(diff_id)
            if info is None or info.blob is not None:
                await trio.to_thread.run_sync(lambda: tarball.unlink(missing_ok=True))
                return
            final = self.layers_dir / _hex(diff_id)

            def commit() -> None:
                self._commit_blob_sync(tarball, blob_digest)
                fsutil.atomic_write(final / "blob", f"{blob_digest}\n".encode(),
                                    mode=0o644, durable=self.durable)

            await trio.to_thread.run_sync(commit)
            info.blob = blob_digest

    async def add_reference(self, image_id: str, reference: Reference) -> None:
        """Point a tag or digest reference at an image (pulls record `repo@digest` too)."""
        async with self._lock:
            if image_id not in self._images:
                raise NotFound(f"No such image: {image_id}")
            if self._refs.get(reference.full_name()) == image_id:
                return  # already so: no rewrite (a cached rebuild tags the same image again)
            await self._tag_locked(image_id, reference)

    def tmp_path(self, prefix: str) -> Path:
        """A fresh name under the store's tmp/ (same filesystem as blobs and layers)."""
        return self.tmp_dir / f"{prefix}{secrets.token_hex(8)}"

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
        tarball, blob_digest, _ = await self._receive(chunks)
        staging: Path | None = None
        try:
            staged, stats = await trio.to_thread.run_sync(
                self._unpack_sync, tarball, blob_digest
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
                    self._commit_layer_sync, staged, stats, tarball, blob_digest
                )
                staging = None
                self._layers[stats.diff_id] = info
                image = await self._commit_image_locked(data)
                if reference is not None:
                    await self._tag_locked(image.id, reference)
            return image
        finally:
            with trio.CancelScope(shield=True):
                leftover = staging
                await trio.to_thread.run_sync(self._cleanup_sync, tarball, leftover)

    @staticmethod
    def _cleanup_sync(tarball: Path, staging: Path | None) -> None:
        tarball.unlink(missing_ok=True)
        if staging is not None:
            fsutil.remove_tree(staging)

    async def add_image(self, config_blob: bytes) -> Image:
        """Record an image whose layers are all in the store already (pulls, loads, commits)."""
        image = ociconfig.image_from_config(config_blob)
        missing = [d for d in image.diff_ids if d not in self._layers]
        if missing:
            raise InvalidParameter(f"image {image.id} needs layers not in the store: {missing}")
        async with self._lock:
            return await self._commit_image_locked(config_blob)

    async def _commit_image_locked(self, data: bytes) -> Image:
        image = ociconfig.image_from_config(data)
        existing = self._records.get(image.id)
        if existing is not None:
            if existing.hidden:
                existing.hidden = False
                await self._index.save(_hex(image.id), existing)
            return self._images[image.id]
        blob = self.blobs_dir / _hex(image.id)
        if not blob.exists():
            await trio.to_thread.run_sync(
                lambda: fsutil.atomic_write(blob, data, mode=0o644, durable=self.durable)
            )
        record = IndexRecord(id=image.id)
        await self._index.save(_hex(image.id), record)  # from here on the image exists
        image.size = sum(self._layers[d].size for d in image.diff_ids)
        self._images[image.id] = image
        self._records[image.id] = record
        return image

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
            if self._visible(image.id) is None:
                raise NotFound(f"No such image: {source}")
            await self._tag_locked(image.id, reference)

    async def _tag_locked(self, image_id: str, reference: Reference) -> None:
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
        await self._index.save(_hex(image_id), record)
        self._refresh_tags(image_id)
        if previous is not None and previous != image_id:
            self._refresh_tags(previous)

    async def _save_refs(self) -> None:
        doc = {"references": dict(sorted(self._refs.items()))}
        data = json.dumps(doc, indent=1).encode()
        await trio.to_thread.run_sync(
            lambda: fsutil.atomic_write(self.repositories_path, data, mode=0o644,
                                        durable=self.durable)
        )

    async def _untag_locked(self, refs: Sequence[Reference]) -> None:
        touched = set()
        for ref in refs:
            image_id = self._refs.pop(ref.full_name(), None)
            if image_id is not None:
                touched.add(image_id)
        await self._save_refs()
        for image_id in touched:
            self._refresh_tags(image_id)

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
        always, though a forced untag is allowed). `prune_children` is accepted for
        the API's `noprune`; imported images have no parents to prune.
        """
        del prune_children  # no parent chains: every image here is its own root
        async with self._lock:
            return await self._delete_locked(name_or_id, force=force, in_use_by=in_use_by)

    async def _delete_locked(self, name_or_id: str, *, force: bool,
                             in_use_by: ImageUsers) -> _DeleteList:
        image = self.resolve(name_or_id)
        refs = self.references(image.id)
        records: _DeleteList = []
        quiet = False
        if not is_id_prefix(image.id, name_or_id):
            if not force and _is_single_reference(refs):
                users = list(in_use_by(image.id))
                if users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name_or_id}" '
                        f"(must force) - container {users[0][0][:12]} is using its "
                        f"referenced image {image.short_id}"
                    )
            ref = parse(name_or_id)
            remaining = [r for r in refs if r.full_name() != ref.full_name()]
            doomed_refs = [ref]
            if ref.digest is None and not any(
                r.digest is None and r.name == ref.name for r in remaining
            ):  # the repository's last tag: its digests go with it
                doomed_refs += [r for r in remaining if r.digest is not None and r.name == ref.name]
            await self._untag_locked(doomed_refs)  # one write of repositories.json
            records.extend(DeleteItem(untagged=r.familiar()) for r in doomed_refs)
            refs = self.references(image.id)
            if refs:
                return records
            quiet = True
        elif _is_single_reference(refs):
            conflict = self._conflict(image.id, in_use_by, stopped=not force,
                                      references=False)
            if conflict is not None:
                raise conflict.error()
            await self._untag_locked(refs)
            records.extend(DeleteItem(untagged=r.familiar()) for r in refs)
        conflict = self._conflict(image.id, in_use_by, stopped=not force, references=not force)
        if conflict is not None:
            if quiet and (not self.is_dangling(image.id) or conflict.used):
                return records
            raise conflict.error()
        items, _ = await self._remove_image_locked(image.id, in_use_by)
        records.extend(items)
        return records

    def _conflict(self, image_id: str, in_use_by: ImageUsers, *, stopped: bool,
                  references: bool) -> _DeleteConflict | None:
        users = list(in_use_by(image_id))
        for container_id, running in users:
            if running:
                return _DeleteConflict(
                    image_id, hard=True, used=True,
                    message=f"image is being used by running container {container_id[:12]}",
                )
        if references and not self.is_dangling(image_id):
            return _DeleteConflict(
                image_id, hard=False, used=False,
                message="image is referenced in multiple repositories",
            )
        if stopped and users:
            return _DeleteConflict(
                image_id, hard=False, used=True,
                message=f"image is being used by stopped container {users[0][0][:12]}",
            )
        return None

    async def _remove_image_locked(self, image_id: str,
                                   in_use_by: ImageUsers) -> tuple[_DeleteList, int]:
        """Untag and remove an image, and the layers no other image needs.

        If a container still uses it (a forced removal), only hide it: its layers stay
        for that container until `gc` finds it unused.
        """
        records: _DeleteList = []
        refs = self.references(image_id)
        if refs:
            await self._untag_locked(refs)
            records.extend(DeleteItem(untagged=r.familiar()) for r in refs)
        record = self._records[image_id]
        if list(in_use_by(image_id)):
            if not record.hidden:
                record.hidden = True
                await self._index.save(_hex(image_id), record)
            records.append(DeleteItem(deleted=image_id))
            return records, 0
        image = self._images[image_id]
        await self._index.delete(_hex(image_id))  # from here on the image is gone
        del self._images[image_id]
        del self._records[image_id]
        still_needed = {d for img in self._images.values() for d in img.diff_ids}
        still_needed |= set(self._pinned)
        doomed = [d for d in dict.fromkeys(image.diff_ids) if d not in still_needed]
        reclaimed = 0
        removed_blobs: list[str] = []
        for diff_id in doomed:
            info = self._layers.pop(diff_id, None)
            if info is None:
                continue
            reclaimed += info.size
            if info.blob and not any(li.blob == info.blob for li in self._layers.values()):
                removed_blobs.append(info.blob)
        removed_blobs.append(image_id)
        await self._remove_files(doomed, removed_blobs)
        records.append(DeleteItem(deleted=image_id))
        records.extend(DeleteItem(deleted=d) for d in doomed)
        return records, reclaimed

    async def discard_layers(self, diff_ids: Iterable[str]) -> _StrList:
        """Remove layers a failed pull or load ingested, unless something needs them now.

        Without this they would stay unreferenced until the next start. Layers an image
        uses or a pin holds (another pull or load still assembling its image) stay, so
        call it after releasing your own pin. Returns the diff IDs removed.
        """
        async with self._lock:
            still_needed = {d for img in self._images.values() for d in img.diff_ids}
            still_needed |= set(self._pinned)
            doomed = [d for d in dict.fromkeys(diff_ids)
                      if d in self._layers and d not in still_needed]
            removed_blobs: list[str] = []
            for diff_id in doomed:
                info = self._layers.pop(diff_id)
                if info.blob and not any(li.blob == info.blob for li in self._layers.values()):
                    removed_blobs.append(info.blob)
            if doomed:
                await self._remove_files(doomed, removed_blobs)
            return doomed

    async def _remove_files(self, layers: Sequence[str], blobs: Sequence[str]) -> None:
        """Take layers and blobs out of sight now; delete their files in the background.

        Called after the index record is gone, which is the point of no return: a crash
        from here on leaves unreferenced layers and blobs, which `open` removes. So the
        renames need no fsync, and nobody waits for megabytes to be unlinked (`rmi`
        answers once the names are gone; `drain` waits for the deleting, for tests).
        """
        trash = await trio.to_thread.run_sync(self._hide_files_sync, layers, blobs)
        if not trash:
            return
        self._reaping += 1

        async def reap() -> None:
            try:
                await trio.to_thread.run_sync(_delete_paths, trash)
            except Exception:
                log.exception("deleting removed layers failed; the next start retries")
            finally:
                self._reaping -= 1
                if self._reaping == 0:
                    self._reaped.set()
                    self._reaped = trio.Event()

        trio.lowlevel.spawn_system_task(reap, name="image-store-reaper")

    def _hide_files_sync(self, layers: Sequence[str], blobs: Sequence[str]) -> _PathList:
        trash: _PathList = []
        for diff_id in layers:
            doomed = self._hide_layer_dir_sync(diff_id, durable=False)
            if doomed is not None:
                trash.append(doomed)
        for digest in blobs:
            doomed = self.tmp_dir / f"del-{_hex(digest)[:12]}-{secrets.token_hex(4)}"
            with suppress(FileNotFoundError):
                os.rename(self.blobs_dir / _hex(digest), doomed)
                trash.append(doomed)
        return trash

    async def drain(self) -> None:
        """Wait until files of removed images are deleted (tests; disk accounting)."""
        while self._reaping:
            await self._reaped.wait()

    async def prune(
        self,
        *,
        dangling_only: bool,
        in_use: InUse,
        select: ImageFilter | None = None,
    ) -> tuple[_DeleteList, int]:
        """`docker image prune [-a]`: remove unused images; (deleted items, bytes reclaimed).

        Dangling only: images without tags. Otherwise every image no container uses.
        `select` narrows the candidates (the API's `until` and `label` filters).
        Images hidden by a forced removal go too once no container uses them.
        """

        def users(image_id: str) -> Sequence[tuple[str, bool]]:
            return [("", False)] if in_use(image_id) else []

        records: _DeleteList = []
        reclaimed = 0
        async with self._lock:
            for image in self.list():
                if image.id not in self._images or in_use(image.id):
                    continue
                if select is not None and not select(image):
                    continue
                refs = self.references(image.id)
                if refs and dangling_only and any(r.digest is None for r in refs):
                    continue
                if refs:
                    await self._untag_locked(refs)
                    records.extend(DeleteItem(untagged=r.familiar()) for r in refs)
                items, freed = await self._remove_image_locked(image.id, users)
                records.extend(items)
                reclaimed += freed
            reclaimed += await self._gc_locked(in_use)
        return records, reclaimed

    async def gc(self, in_use: InUse) -> int:
        """Drop images hidden by a forced removal once no container uses them; bytes freed.

        The container manager calls this after removing a container.
        """
        async with self._lock:
            return await self._gc_locked(in_use)

    async def _gc_locked(self, in_use: InUse) -> int:
        freed = 0
        for image_id, record in list(self._records.items()):
            if record.hidden and not in_use(image_id):
                _, n = await self._remove_image_locked(image_id, lambda _i: [])
                freed += n
        return freed


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

