"""The members of a saved archive and their tar headers, in Docker's order and bytes.

Pure functions of the images, configs and layer sizes: the same images always give
the same archive, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from engine.images.archive.formats import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    BLOCK,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    OCI_LAYOUT,
    blob_name,
    digest_hex,
)
from engine.images.archive.selection import SavedImage


@attrs.frozen
class LayerSource:
    """Where a layer's tar comes from: its kept tarball, compressed or not."""

    diff_id: str
    path: Path
    compressed: bool
    size: int  # bytes of the uncompressed tar


@attrs.frozen
class Member:
    """One archive member: a directory, bytes in memory, or a layer read from the store."""

    name: str
    data: bytes = b""
    layer: LayerSource | None = None
    directory: bool = False

    @property
    def size(self) -> int:
        if self.layer is not None:
            return self.layer.size
        return len(self.data)


def _json(doc: Any) -> bytes:
    """Go's json.Marshal output for our documents: compact, keys in the order given."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def layout(images: Sequence[SavedImage], configs: dict[str, bytes],
           layers: dict[str, LayerSource]) -> list[Member]:
    """The members of the archive, in Docker's order (a sorted walk of its directory)."""
    blobs: dict[str, Member] = {}
    items: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for saved in images:
        image = saved.image
        config = configs[image.id]
        blobs[digest_hex(image.id)] = Member(blob_name(image.id), data=config)
        descriptors = []
        for diff_id in image.diff_ids:
            source = layers[diff_id]
            blobs.setdefault(digest_hex(diff_id), Member(blob_name(diff_id), layer=source))
            descriptors.append({"mediaType": MEDIA_LAYER, "digest": diff_id, "size": source.size})
        manifest = _json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": image.id, "size": len(config)},
            "layers": descriptors,
        })
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        blobs[digest_hex(digest)] = Member(blob_name(digest), data=manifest)
        descriptor = {"mediaType": MEDIA_MANIFEST, "digest": digest, "size": len(manifest)}
        for ref in saved.tags:
            entries.append({**descriptor, "annotations": {
                ANNOTATION_IMAGE_NAME: ref.full_name(), ANNOTATION_REF_NAME: ref.tag}})
            if image.diff_ids:
                repositories.setdefault(ref.repository, {})[str(ref.tag)] = digest_hex(image.diff_ids[-1])
        if not saved.tags:
            entries.append(descriptor)
        items.append({
            "Config": blob_name(image.id),
            "RepoTags": [ref.familiar() for ref in saved.tags] or None,
            "Layers": [blob_name(d) for d in image.diff_ids],
        })
    members = [Member("blobs", directory=True), Member("blobs/sha256", directory=True)]
    members += [blobs[key] for key in sorted(blobs)]
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
    members.append(Member("index.json", data=_json(index)))
    members.append(Member("manifest.json", data=_json(items) + b"\n"))
    members.append(Member("oci-layout", data=OCI_LAYOUT))
    if repositories:
        data = json.dumps(repositories, separators=(",", ":"), sort_keys=True).encode() + b"\n"
        members.append(Member("repositories", data=data))
    return members


def tar_header(name: str, size: int, *, directory: bool = False) -> bytes:
    """A fixed header (root-owned, mtime 0): the same images give the same archive bytes."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = 0 if directory else size
    info.mode = 0o755 if directory else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


__all__ = ["LayerSource", "Member", "layout", "padding", "tar_header"]
