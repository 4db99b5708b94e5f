"""Pulling an image: manifest, platform, config, then layers downloaded and unpacked at once.

Two phases, so the API can answer as dockerd does: `resolve` talks to the registry
until the image's config is known (a missing image, bad credentials or an unreachable
registry fail it, and the client gets the real status code); `fetch` then streams
progress while the layers come.

Layers are downloaded concurrently (`max-concurrent-downloads`, 3 by default) and each
is unpacked as soon as it has arrived and been verified: every layer is its own
directory, so unlike dockerd's chain of diffs nothing waits for the layer below.
Downloads land in `images/downloads/<digest>.partial`, which outlives a failed pull or
a moord restart: the next attempt asks for the rest with `Range`, hashing what it
already has. Every blob is checked against its digest, and every unpacked layer
against the diff ID the config lists; content that does not match is thrown away.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from engine.batching import write_in_batches
from engine.errors import InvalidParameter, NotFound, Unauthorized
from engine.images import ociconfig
from engine.images.importer import Platform
from engine.images.model import Image
from engine.images.reference import Reference
from engine.images.store import ImageStore
from engine.images.unpack import diff_id_of
from engine.registry import media
from engine.registry.auth import Credentials
from engine.registry.client import RegistryClient, RegistryUnreachable, Repository, read_limited
from engine.registry.progress import ByteCounter, Progress, ProgressSink
from engine.registry.sources import BlobSources

log = logging.getLogger(__name__)

_CONFIG_LIMIT = 8 * 1024 * 1024
_WRITE_BATCH = 1024 * 1024
_RETRIES = 5
_PARTIAL_MAX_AGE = 24 * 3600.0


class LayerVerificationFailed(InvalidParameter):
    """A downloaded blob does not hash to its digest."""


@attrs.frozen
class PullPlan:
    """What `resolve` learnt: enough to download the image and name it."""

    ref: Reference
    repository: Repository
    manifest_digest: str
    manifest: media.Manifest
    config: bytes
    image: Image

    @property
    def tag_or_digest(self) -> str:
        return self.ref.digest or self.ref.tag or "latest"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Puller:
    """Pulls for the whole daemon: one download per blob even when pulls overlap."""

    def __init__(self, client: RegistryClient, store: ImageStore, *,
                 sources: BlobSources | None = None, max_concurrent: int = 3) -> None:
        self.client = client
        self.sources = sources
        self.store = store
        self.downloads = store.root / "downloads"
        self._swept = False
        self._slots = trio.Semaphore(max(1, max_concurrent))
        self._layer_locks: dict[str, trio.Lock] = {}

    # phase 1 ----------------------------------------------------------------------
    async def resolve(self, ref: Reference, platform: Platform,
                      credentials: Credentials | None) -> PullPlan:
        """Fetch the manifest (choosing `platform` from an index) and the config."""
        repo = self.client.repository(ref, credentials)
        wanted = ref.digest or ref.tag or "latest"
        try:
            data, media_type = await self._manifest(repo, wanted, ref)
        except Unauthorized as exc:  # dockerd's words, and a 404: clients then don't prompt
            raise NotFound(
                f"pull access denied for {ref.repository}, repository does not exist or "
                f"may require 'docker login': {exc.message}"
            ) from None
        digest = _sha256(data)
        if ref.digest is not None and digest != ref.digest:
            raise InvalidParameter(f"manifest verification failed for digest {ref.digest}")
        parsed = media.parse_manifest(data, media_type)
        if isinstance(parsed, media.Index):
            chosen = media.select_platform(parsed, platform)
            data, media_type = await self._manifest(repo, chosen.digest, ref)
            if _sha256(data) != chosen.digest:
                raise InvalidParameter(f"manifest verification failed for digest {chosen.digest}")
            parsed = media.parse_manifest(data, media_type)
            if isinstance(parsed, media.Index):
                raise InvalidParameter("invalid manifest: an index inside an index entry")
        config = await self._config(repo, parsed.config)
        image = ociconfig.image_from_config(config)
        if len(image.diff_ids) != len(parsed.layers):
            raise InvalidParameter(
                f"invalid image: the config lists {len(image.diff_ids)} layers, "
                f"the manifest {len(parsed.layers)}"
            )
        if image.os and image.os != "linux":
            raise InvalidParameter(f"image operating system \"{image.os}\" cannot be used on this platform")
        return PullPlan(ref, repo, digest, parsed, config, image)

    async def _manifest(self, repo: Repository, wanted: str, ref: Reference) -> tuple[bytes, str]:
        response = await repo.request("GET", f"manifests/{wanted}",
                                      headers={"Accept": media.ACCEPT}, stream=True)
        try:
            if response.status_code != 200:
                what = ("pull" if response.status_code in (401, 403)
                        else f"manifest for {ref.familiar()} not found")
                error = await repo.failure(response, what)
                if isinstance(error, NotFound) and "access denied" not in error.message \
                        and response.status_code == 404:
                    raise NotFound(f"manifest for {ref.familiar()} not found: "
                                   f"{error.message.partition(': ')[2]}")
                raise error
            data = await read_limited(response, media.MANIFEST_LIMIT, "manifest")
            return data, response.headers.get("content-type", "")
        finally:
            await response.aclose()

    async def _config(self, repo: Repository, desc: media.Descriptor) -> bytes:
        path = self.store.blob_path(desc.digest)
        try:
            data = await trio.to_thread.run_sync(path.read_bytes)
            if _sha256(data) == desc.digest:
                return data
        except FileNotFoundError:
            pass
        response = await repo.request("GET", f"blobs/{desc.digest}", stream=True)
        try:
            if response.status_code != 200:
                raise await repo.failure(response, f"fetching config {desc.digest}")
            data = await read_limited(response, _CONFIG_LIMIT, "image config")
        finally:
            await response.aclose()
        if _sha256(data) != desc.digest:
            raise LayerVerificationFailed(
                f"image config verification failed for digest {desc.digest}")
        return data

    # phase 2 ----------------------------------------------------------------------
    async def fetch(self, plan: PullPlan, progress: ProgressSink) -> tuple[Image, bool]:
        """Download and unpack what is missing, record the image and its names.

        Returns the image and whether anything changed (a new image or a moved tag).
        """
        progress(Progress(f"Pulling from {plan.ref.path}", id=plan.tag_or_digest))
        diff_ids = plan.image.diff_ids
        with self.store.pin_layers(diff_ids):
            todo: dict[str, media.Descriptor] = {}
            tarballs: dict[str, media.Descriptor] = {}
            for desc, diff_id in zip(plan.manifest.layers, diff_ids, strict=True):
                if self.store.has_layer(diff_id):
                    progress(Progress("Already exists", desc.short_id, layer=True))
                    if self.store.layer_blob(diff_id) is None:
                        tarballs[diff_id] = desc  # set aside as corrupt: fetch it again
                elif diff_id not in todo:
                    todo[diff_id] = desc
                    progress(Progress("Pulling fs layer", desc.short_id, layer=True))
            async with trio.open_nursery() as nursery:
                for diff_id, desc in todo.items():
                    nursery.start_soon(self._layer, plan.repository, desc, diff_id, progress)
                for diff_id, desc in tarballs.items():
                    nursery.start_soon(self._tarball, plan.repository, desc, diff_id)
            known = self.store.get(plan.image.id)
            before = self.store.references(plan.image.id) if known is not None else []
            image = await self.store.add_image(plan.config)
        names = [plan.ref] if plan.ref.tag is not None else []
        names.append(Reference(plan.ref.domain, plan.ref.path, None, plan.manifest_digest))
        changed = known is None
        for name in names:
            if name.full_name() not in {r.full_name() for r in before}:
                await self.store.add_reference(image.id, name)
                changed = changed or name.tag is not None
        if self.sources is not None:
            for desc in plan.manifest.layers:
                self.sources.add(desc.digest, f"{plan.ref.domain}/{plan.ref.path}")
            await self.sources.save()
        progress(Progress(f"Digest: {plan.manifest_digest}"))
        shown = plan.ref.familiar()
        if changed:
            progress(Progress(f"Status: Downloaded newer image for {shown}"))
        else:
            progress(Progress(f"Status: Image is up to date for {shown}"))
        return image, changed

    async def _layer(self, repo: Repository, desc: media.Descriptor, diff_id: str,
                     progress: ProgressSink) -> None:
        lock = self._layer_locks.setdefault(diff_id, trio.Lock())
        try:
            async with lock:
                if self.store.has_layer(diff_id):
                    progress(Progress("Pull complete", desc.short_id, layer=True))
                    return
                if self._slots.value == 0:
                    progress(Progress("Waiting", desc.short_id, layer=True))
                async with self._slots:
                    path = await self.download(repo, desc, progress)
                progress(Progress("Extracting", desc.short_id, 0, desc.size, layer=True))
                await self.store.ingest_layer(path, blob_digest=desc.digest,
                                              expected_diff_id=diff_id)
                progress(Progress("Pull complete", desc.short_id, layer=True))
        finally:
            if not lock.statistics().tasks_waiting:
                self._layer_locks.pop(diff_id, None)

    async def _tarball(self, repo: Repository, desc: media.Descriptor, diff_id: str) -> None:
        """Restore the kept tarball of a layer whose blob was found corrupt and removed.

        The layer's files are not touched; the download must still hash to the
        layer's diff ID once uncompressed, or it is not kept.
        """
        async with self._slots:
            path = await self.download(repo, desc, lambda _p: None)
        try:
            actual = await trio.to_thread.run_sync(diff_id_of, path)
            if actual != diff_id:
                raise LayerVerificationFailed(
                    f"layer {desc.digest} does not unpack to the diff ID {diff_id} it had")
            await self.store.keep_blob(diff_id, path, desc.digest)
        finally:
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    # downloading ------------------------------------------------------------------
    async def download(self, repo: Repository, desc: media.Descriptor,
                       progress: ProgressSink) -> Path:
        """Download one blob to a verified file, resuming what an earlier try left."""
        partial = self.downloads / f"{desc.digest.partition(':')[2]}.partial"
        if not self._swept:
            self._swept = True
            await trio.to_thread.run_sync(_prepare_downloads, self.downloads)
        for attempt in range(2):
            resumed, actual = await self._download_into(partial, repo, desc, progress)
            if actual == desc.digest:
                return partial
            await trio.to_thread.run_sync(lambda: partial.unlink(missing_ok=True))
            if not resumed or attempt == 1:
                break
            log.warning("resumed download of %s did not verify; downloading it whole", desc.digest)
        raise LayerVerificationFailed(f"filesystem layer verification failed for digest {desc.digest}")

    async def _download_into(self, partial: Path, repo: Repository, desc: media.Descriptor,
                             progress: ProgressSink) -> tuple[bool, str]:
        """Fill `partial` with the blob's bytes: (resumed an earlier try, digest of the file).

        The digest is computed as the bytes arrive; after a break, from the file again.
        """
        offset, hasher = await trio.to_thread.run_sync(_resume_state, partial, desc.size)
        resumed = offset > 0
        counter = ByteCounter(progress, "Downloading", desc.short_id, desc.size, offset)
        failures = 0
        while offset < desc.size or desc.size == 0:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                async with repo.stream(f"blobs/{desc.digest}", headers) as response:
                    if response.status_code not in (200, 206, 416):
                        raise await repo.failure(response, f"fetching blob {desc.digest}")
                    if response.status_code == 416 or (response.status_code == 200 and offset):
                        # the server can't or won't resume: start the file again
                        offset, hasher = await trio.to_thread.run_sync(_resume_state, partial, -1)
                        counter.current = 0
                        if response.status_code == 416:
                            continue
                    offset = await self._write_stream(partial, response, offset, counter, hasher)
                if desc.size == 0:
                    break
            except (httpx.TransportError, RegistryUnreachable) as exc:
                # what arrived before the break was written: go on from there
                offset, hasher = await trio.to_thread.run_sync(_resume_state, partial, desc.size)
                failures += 1
                if failures > _RETRIES:
                    raise RegistryUnreachable(
                        f"download of {desc.digest} failed after {failures} attempts "
                        f"({offset} of {desc.size} bytes kept for the next pull): {exc}"
                    ) from None
                log.info("download of %s interrupted at %d bytes (%s); resuming",
                         desc.digest, offset, exc)
                await trio.sleep(0.1 * 2 ** failures)
            if offset > desc.size:
                break
        progress(Progress("Verifying Checksum", desc.short_id, layer=True))
        progress(Progress("Download complete", desc.short_id, layer=True))
        return resumed, "sha256:" + hasher.hexdigest()

    async def _write_stream(self, partial: Path, response: httpx.Response, offset: int,
                            counter: ByteCounter, hasher: Any) -> int:
        """Append the response body to `partial` (hashing it) in batches, off the trio thread.

        No fsync here: the store syncs the filesystem before the layer becomes visible.
        """
        f = await trio.to_thread.run_sync(lambda: open(partial, "ab"))  # noqa: SIM115

        def write(data: bytes) -> None:
            hasher.update(data)
            f.write(data)

        try:
            offset += await write_in_batches(response.aiter_raw(), write, batch=_WRITE_BATCH,
                                             on_chunk=counter.add)
        finally:
            await trio.to_thread.run_sync(f.close)
        return offset


def _prepare_downloads(directory: Path) -> None:
    """Make the directory; forget partial downloads nobody came back for within a day."""
    directory.mkdir(exist_ok=True)
    cutoff = time.time() - _PARTIAL_MAX_AGE
    for entry in directory.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
        except FileNotFoundError:
            pass


def _resume_state(path: Path, limit: int) -> tuple[int, Any]:
    """(bytes already downloaded, a sha256 over them); past `limit` (or `limit` < 0) the
    file is emptied and both start from zero."""
    hasher = hashlib.sha256()
    size = _existing_size(path, limit)
    if size:
        with open(path, "rb") as f:
            while chunk := f.read(_WRITE_BATCH):
                hasher.update(chunk)
    return size, hasher


def _existing_size(path: Path, limit: int) -> int:
    """Bytes already downloaded; a file longer than `limit` (or `limit` < 0) is emptied."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if limit < 0 or size > limit:
        path.unlink()
        return 0
    return size


__all__ = ["LayerVerificationFailed", "PullPlan", "Puller"]
