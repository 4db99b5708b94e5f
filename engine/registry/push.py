"""Pushing an image: layers (skipped, mounted or uploaded), config, then the manifest.

Each layer is pushed as the very tarball it came in as (the store keeps it as a
blob), so a pulled image pushes back byte for byte and its layer digests stay what
other registries and caches already know. The bytes are checked against their digest
before they leave: a blob corrupted on disk is refused, never uploaded.

A blob the registry already has is skipped (`HEAD`); one that this daemon pulled from
or pushed to another repository on the same registry is mounted from there
(`POST …/blobs/uploads/?mount=&from=`) instead of uploaded again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import trio

from engine.errors import InvalidParameter, NotFound
from engine.images.model import Image
from engine.images.reference import Reference
from engine.images.store import ImageStore
from engine.registry import media
from engine.registry.auth import Credentials
from engine.registry.client import RegistryClient, Repository
from engine.registry.progress import ByteCounter, Progress, ProgressSink
from engine.registry.sources import BlobSources

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"))


def _compression(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return ""


@attrs.frozen
class PushedLayer:
    descriptor: media.Descriptor
    diff_id: str


class Pusher:
    def __init__(self, client: RegistryClient, store: ImageStore, sources: BlobSources, *,
                 max_concurrent: int = 5) -> None:
        self.client = client
        self.store = store
        self.sources = sources
        self._slots = trio.Semaphore(max(1, max_concurrent))

    def targets(self, name: str, tag: str) -> list[Reference]:
        """The references a push sends: the one tag, or every tag of the repository."""
        from engine.images.reference import parse

        ref = parse(name, default_tag=False)
        if ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        if tag:
            ref = ref.with_tag(tag)
        if ref.tag is not None:
            self.store.resolve(ref.full_name())
            return [ref]
        tagged = [r for image in self.store.list() for r in self.store.references(image.id)
                  if r.name == ref.name and r.tag is not None and r.digest is None]
        if not tagged:
            raise NotFound(f"An image does not exist locally with the tag: {ref.repository}")
        return sorted(tagged, key=lambda r: r.tag or "")

    async def push(self, refs: list[Reference], credentials: Credentials | None,
                   progress: ProgressSink) -> None:
        progress(Progress(f"The push refers to repository [{refs[0].name}]"))
        for ref in refs:
            image = self.store.resolve(ref.full_name())
            await self._push_one(ref, image, credentials, progress)

    async def _push_one(self, ref: Reference, image: Image, credentials: Credentials | None,
                        progress: ProgressSink) -> None:
        domain_repo = f"{ref.domain}/{ref.path}"
        mounts = {c for d in image.diff_ids
                  for c in self.sources.candidates(self.store.layer_blob(d) or "", ref.domain,
                                                   domain_repo)}
        repo = self.client.repository(ref, credentials, ("pull", "push"),
                                      tuple(f"repository:{m}:pull" for m in sorted(mounts)))
        layers: dict[str, PushedLayer] = {}
        unique = list(dict.fromkeys(image.diff_ids))
        for diff_id in reversed(unique):
            progress(Progress("Preparing", _short(diff_id), layer=True))
        await self._authorise(repo)
        async with trio.open_nursery() as nursery:
            for diff_id in reversed(unique):
                nursery.start_soon(self._layer, repo, diff_id, layers, progress)
        config_desc = await self._config(repo, image)
        ordered = [layers[d].descriptor for d in image.diff_ids]
        kinds = {d.media_type for d in ordered}
        if kinds <= {media.DOCKER_LAYER_GZIP}:
            manifest_type = media.DOCKER_MANIFEST
            config_desc = attrs.evolve(config_desc, media_type=media.DOCKER_CONFIG)
        else:
            manifest_type = media.OCI_MANIFEST
            ordered = [attrs.evolve(d, media_type=_oci_type(d.media_type)) for d in ordered]
        body = media.manifest_bytes(config_desc, ordered, manifest_type)
        response = await repo.request("PUT", f"manifests/{ref.tag}", content=body,
                                      headers={"Content-Type": manifest_type})
        if response.status_code not in (200, 201):
            raise await repo.failure(response, f"pushing manifest for {ref.familiar()}")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        await self.store.add_reference(image.id, Reference(ref.domain, ref.path, None, digest))
        for layer in ordered:
            self.sources.add(layer.digest, domain_repo)
        await self.sources.save()
        progress(Progress(f"{ref.tag}: digest: {digest} size: {len(body)}"))
        progress(Progress("", aux={"Tag": ref.tag, "Digest": digest, "Size": len(body)}))

    async def _authorise(self, repo: Repository) -> None:
        """One cheap request first, so the token (with push scope) is in hand before uploads."""
        response = await repo.request("GET", "tags/list")
        if response.status_code in (401, 403):
            raise await repo.failure(response, "push")

    async def _layer(self, repo: Repository, diff_id: str, out: dict[str, PushedLayer],
                     progress: ProgressSink) -> None:
        short = _short(diff_id)
        blob = self.store.layer_blob(diff_id)
        if blob is None:
            raise NotFound(
                f"layer {diff_id} has no stored tarball (it was found corrupt and removed); "
                "pull or load the image again before pushing it"
            )
        path = await self.store.verified_blob(blob)
        size, kind = await trio.to_thread.run_sync(
            lambda: (path.stat().st_size, _compression(path)))
        desc = media.Descriptor(_docker_type(kind), blob, size)
        out[diff_id] = PushedLayer(desc, diff_id)
        if self._slots.value == 0:
            progress(Progress("Waiting", short, layer=True))
        async with self._slots:
            head = await repo.request("HEAD", f"blobs/{blob}")
            if head.status_code == 200:
                progress(Progress("Layer already exists", short, layer=True))
                return
            domain_repo = f"{repo.ref.domain}/{repo.ref.path}"
            location = ""
            for source in self.sources.candidates(blob, repo.ref.domain, domain_repo):
                response = await repo.request("POST", "blobs/uploads/",
                                              params={"mount": blob, "from": source})
                if response.status_code == 201:
                    progress(Progress(f"Mounted from {source}", short, layer=True))
                    return
                if response.status_code == 202:
                    location = response.headers.get("location", "")
                    break
            await self.upload(repo, path, blob, size, progress, short, location)
            progress(Progress("Pushed", short, layer=True))

    async def upload(self, repo: Repository, path: Path, digest: str, size: int,
                     progress: ProgressSink, short: str, location: str = "") -> None:
        """A monolithic upload: open a session, then PUT the whole blob with its digest."""
        if not location:
            response = await repo.request("POST", "blobs/uploads/")
            if response.status_code != 202:
                raise await repo.failure(response, f"starting the upload of {digest}")
            location = response.headers.get("location", "")
        if not location:
            raise InvalidParameter("registry started an upload without a location")
        if location.startswith("/"):
            assert repo.endpoint is not None
            location = repo.endpoint.url + location
        counter = ByteCounter(progress, "Pushing", short, size) if short else None

        async def chunks() -> AsyncIterator[bytes]:
            f = await trio.to_thread.run_sync(lambda: open(path, "rb"))  # noqa: SIM115
            try:
                while data := await trio.to_thread.run_sync(f.read, _CHUNK):
                    if counter is not None:
                        counter.add(len(data))
                    yield data
            finally:
                await trio.to_thread.run_sync(f.close)

        separator = "&" if "?" in location else "?"
        response = await repo.request(
            "PUT", f"{location}{separator}digest={digest}", content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        if response.status_code not in (201, 204):
            raise await repo.failure(response, f"uploading {digest}")

    async def _config(self, repo: Repository, image: Image) -> media.Descriptor:
        path = await self.store.verified_blob(image.id)
        size = await trio.to_thread.run_sync(lambda: path.stat().st_size)
        desc = media.Descriptor(media.OCI_CONFIG, image.id, size)
        head = await repo.request("HEAD", f"blobs/{image.id}")
        if head.status_code != 200:
            await self.upload(repo, path, image.id, size, lambda _p: None, "")
        return desc


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _docker_type(kind: str) -> str:
    return {"gzip": media.DOCKER_LAYER_GZIP, "zstd": media.OCI_LAYER_ZSTD}.get(kind, media.OCI_LAYER)


def _oci_type(docker_type: str) -> str:
    return media.OCI_LAYER_GZIP if docker_type == media.DOCKER_LAYER_GZIP else docker_type


__all__ = ["Pusher"]
