"""Unpacked layers, keyed by diff ID and shared by every image that lists them.

On disk, `layers/<diffid-hex>/` holds `diff/` (an overlayfs lower directory), `size`
(bytes of file content), `blob` (the digest of the tarball it came from, if kept)
and `link` (its short name, see `layerlinks`). A layer is unpacked into
`layers/.tmp-<random>/`, synced, and renamed visible; it is removed by renaming it to
`layers/.del-*` first, so a half-deleted layer is never mistaken for a layer. Start-up
(`load_sync`) deletes both kinds of leftovers.

The in-memory table changes only under the image store's lock; the methods ending in
`_sync` block and run on a worker thread.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence, Set
from contextlib import contextmanager
from pathlib import Path

import attrs

from engine import fsutil
from engine.images.blobstore import HEX64, BlobStore, hex_of
from engine.images.layerlinks import LayerLinks, read_link_name
from engine.images.unpack import LayerStats, unpack_layer
from engine.kernel import libc

log = logging.getLogger(__name__)


@attrs.define
class LayerInfo:
    size: int
    blob: str | None = None
    link: str = ""  # short name of layers/l/<link> -> ../<diffid-hex>/diff


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding `path`: one call instead of an fsync per unpacked file."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc.syncfs(fd)
    except OSError:
        os.sync()
    finally:
        os.close(fd)


class LayerStore:
    """The layers under `directory`; layer tarballs kept as blobs go to `blobs`."""

    def __init__(self, directory: Path, blobs: BlobStore, *, durable: bool) -> None:
        self.directory = directory
        self.durable = durable
        self.links = LayerLinks(directory / "l", durable=durable)
        self._blobs = blobs
        self._layers: dict[str, LayerInfo] = {}  # diff ID -> info
        self._pinned: Counter[str] = Counter()  # diff IDs an unfinished pull or load needs

    # start-up ------------------------------------------------------------------
    def load_sync(self) -> None:
        """Drop unfinished unpacks and removals, then read the layers (see `_scan_sync`)."""
        for entry in self.directory.iterdir():
            if entry.name.startswith("."):  # .tmp-* (unpack) or .del-* (removal) in progress
                log.info("removing unfinished layer directory %s", entry)
                fsutil.remove_tree(entry)
        self._layers = self._scan_sync()

    def _scan_sync(self) -> dict[str, LayerInfo]:
        """Read the layers; give a layer without a working short link one, drop stray links.

        A crash between creating a link and renaming its staged layer visible leaves
        a dangling link in `l/`; layers made before links existed have none.
        """
        layers: dict[str, LayerInfo] = {}
        self.links.directory.mkdir(exist_ok=True)
        for entry in self.directory.iterdir():
            if not HEX64.match(entry.name):
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
                                                       self.links.repair_sync(entry))
        self.links.sweep_sync({info.link for info in layers.values()})
        return layers

    def collect_unreferenced_sync(self, needed: Set[str]) -> None:
        """Remove the layers not in `needed` (leftovers of crashes)."""
        for diff_id in list(self._layers):
            if diff_id not in needed:
                log.info("removing unreferenced layer %s", diff_id)
                self.remove_sync(diff_id)
                del self._layers[diff_id]

    # reading -------------------------------------------------------------------
    def __contains__(self, diff_id: str) -> bool:
        return diff_id in self._layers

    def get(self, diff_id: str) -> LayerInfo | None:
        return self._layers.get(diff_id)

    def size(self, diff_id: str) -> int:
        info = self._layers.get(diff_id)
        return info.size if info else 0

    def kept_blobs(self) -> set[str]:
        """Hex names of the tarball blobs layers keep."""
        return {hex_of(info.blob) for info in self._layers.values() if info.blob}

    def diff_dir(self, diff_id: str) -> Path:
        return self.directory / hex_of(diff_id) / "diff"

    def lower_links(self, diff_ids: Sequence[str]) -> list[str]:
        """`l/<link>` paths relative to `directory`, top layer first (see `layerlinks`).

        A layer without a link (never after `load_sync`) falls back to its absolute
        path, which resolves the same from any directory.
        """
        lowers: list[str] = []
        for diff_id in reversed(diff_ids):
            info = self._layers.get(diff_id)
            if info is not None and info.link:
                lowers.append(f"{self.links.directory.name}/{info.link}")
            else:
                lowers.append(str(self.diff_dir(diff_id)))
        return lowers

    # pins ------------------------------------------------------------------------
    @contextmanager
    def pin(self, diff_ids: Iterable[str]) -> Iterator[None]:
        """Count these layers as needed while the `with` block runs."""
        pinned = list(diff_ids)
        self._pinned.update(pinned)
        try:
            yield
        finally:
            self._pinned.subtract(pinned)
            self._pinned += Counter()  # drop zero counts

    def pinned(self) -> set[str]:
        return set(self._pinned)

    # adding ----------------------------------------------------------------------
    def unpack_sync(self, tarball: Path, blob_digest: str | None) -> tuple[Path, LayerStats]:
        """Unpack into layers/.tmp-<random>/ with its size and blob files: not yet visible."""
        staging = self.directory / f".tmp-{secrets.token_hex(8)}"
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

    def commit_sync(self, staging: Path, stats: LayerStats, tarball: Path | None,
                    blob_digest: str | None) -> LayerInfo:
        """Make a staged layer visible (or drop it if the same layer already is).

        The tarball becomes its blob first; the caller records the returned info.
        """
        final = self.directory / hex_of(stats.diff_id)
        existing = self._layers.get(stats.diff_id)
        if existing is not None and final.is_dir():
            fsutil.remove_tree(staging)
            if existing.blob is None and tarball is not None and blob_digest is not None:
                self.keep_blob_sync(stats.diff_id, tarball, blob_digest)
                existing.blob = blob_digest
            return existing
        if tarball is not None and blob_digest is not None:
            self._blobs.commit_sync(tarball, blob_digest)
        if final.exists():  # a leftover no record knew of: replace it
            self.remove_sync(stats.diff_id)
        # the link dangles until the rename; a crash before it leaves a stray `open` drops
        link = self.links.make_sync(hex_of(stats.diff_id))
        (staging / "link").write_text(f"{link}\n")
        if self.durable:
            _syncfs(staging)
        os.rename(staging, final)
        if self.durable:
            fsutil.fsync_dir(self.directory)
        return LayerInfo(stats.content_size, blob_digest, link)

    def add(self, diff_id: str, info: LayerInfo) -> None:
        self._layers[diff_id] = info

    def keep_blob_sync(self, diff_id: str, tarball: Path, blob_digest: str) -> None:
        """Store the verified tarball as the layer's blob and record it in its `blob` file."""
        self._blobs.commit_sync(tarball, blob_digest)
        fsutil.atomic_write(self.directory / hex_of(diff_id) / "blob",
                            f"{blob_digest}\n".encode(), mode=0o644, durable=self.durable)

    # forgetting and removing -------------------------------------------------------
    def forget_blob(self, digest: str) -> list[str]:
        """Layers that kept this blob keep it no more; their diff IDs (see `unlink_blob_files_sync`)."""
        orphaned = [d for d, info in self._layers.items() if info.blob == digest]
        for diff_id in orphaned:
            self._layers[diff_id].blob = None
        return orphaned

    def unlink_blob_files_sync(self, diff_ids: Iterable[str]) -> None:
        for diff_id in diff_ids:
            (self.directory / hex_of(diff_id) / "blob").unlink(missing_ok=True)

    def forget(self, diff_ids: Iterable[str]) -> tuple[list[str], int]:
        """Take layers out of the table: (blobs no remaining layer keeps, their bytes).

        The caller then removes their files (`hide_sync` or `remove_sync`).
        """
        blobs: list[str] = []
        size = 0
        for diff_id in diff_ids:
            info = self._layers.pop(diff_id, None)
            if info is None:
                continue
            size += info.size
            if info.blob and not any(li.blob == info.blob for li in self._layers.values()):
                blobs.append(info.blob)
        return blobs, size

    def remove_sync(self, diff_id: str) -> None:
        """Rename first, then delete: a half-deleted layer is never mistaken for a layer."""
        doomed = self.hide_sync(diff_id, durable=self.durable)
        if doomed is not None:
            fsutil.remove_tree(doomed)

    def hide_sync(self, diff_id: str, *, durable: bool) -> Path | None:
        """Rename the layer's directory out of sight and drop its short link (dangling
        now; after a crash between the two, `open` drops it); where the directory went,
        or None if there was none. `durable`: the rename is synced before the link goes."""
        final = self.directory / hex_of(diff_id)
        if not final.exists():
            return None
        link = read_link_name(final)
        doomed = self.directory / f".del-{hex_of(diff_id)[:12]}-{secrets.token_hex(4)}"
        os.rename(final, doomed)
        if durable:
            fsutil.fsync_dir(self.directory)
        self.links.drop_sync(link, hex_of(diff_id))
        return doomed
