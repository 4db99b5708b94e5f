"""Manifests, indexes and descriptors: the distribution formats as domain records.

Registries serve four shapes: Docker's schema 2 manifest and manifest list, and
OCI's image manifest and image index. They differ in media types only; the records
here hold what pull and push need from any of them. Schema 1 (signed, pre-2017) is
refused: registries have not served it by default for years.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from engine.errors import InvalidParameter, NotFound
from engine.images.importer import Platform
from engine.jsondoc import load_object

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
#: What we send as `Accept` for a manifest: every shape we can read.
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

#: The most a manifest may weigh; registries cap theirs at 4 MiB too.
MANIFEST_LIMIT = 4 * 1024 * 1024

_LAYER_TYPES = {
    DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar", DOCKER_FOREIGN_LAYER,
    OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}


@attrs.frozen
class Descriptor:
    """A pointer to content: what it is, its digest and its size."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker's progress output names a blob by."""
        return self.digest.partition(":")[2][:12]


@attrs.frozen
class Manifest:
    """One image on one platform: its config and its layers, bottom first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@attrs.frozen
class Index:
    """A multi-platform image: one manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def _descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"invalid manifest: {what} is not an object")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise InvalidParameter(f"invalid manifest: {what} has an unsupported digest {digest!r}")
    if not isinstance(size, int) or size < 0:
        raise InvalidParameter(f"invalid manifest: {what} has an invalid size")
    platform = None
    plat = raw.get("platform")
    if isinstance(plat, dict):
        platform = Platform(str(plat.get("os", "")), str(plat.get("architecture", "")),
                            str(plat.get("variant", "") or ""))
    urls = raw.get("urls") or ()
    return Descriptor(str(raw.get("mediaType", "")), digest, size, platform,
                      tuple(str(u) for u in urls) if isinstance(urls, list) else ())


def parse_manifest(data: bytes, content_type: str) -> Manifest | Index:
    """A manifest or index as the registry sent it; the media type decides the shape.

    Registries sometimes answer with a generic content type; the document's own
    `mediaType` (or the presence of `manifests` vs `layers`) then tells.
    """
    doc = load_object(data, "invalid manifest")
    declared = doc.get("mediaType") or content_type.split(";")[0].strip()
    if declared in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InvalidParameter(
            "unsupported manifest format: Docker image manifest schema 1; "
            "push the image again with a current client"
        )
    if declared in INDEX_TYPES or (declared not in MANIFEST_TYPES and "manifests" in doc):
        raw = doc.get("manifests")
        if not isinstance(raw, list):
            raise InvalidParameter("invalid manifest: index without manifests")
        return Index(declared or OCI_INDEX,
                     tuple(_descriptor(m, f"manifests[{i}]") for i, m in enumerate(raw)))
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidParameter(f"invalid manifest: unsupported media type {declared!r}")
    config = _descriptor(doc.get("config"), "config")
    parsed = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers))
    for layer in parsed:
        if layer.media_type and layer.media_type not in _LAYER_TYPES:
            raise InvalidParameter(f"unsupported layer media type {layer.media_type!r}")
    return Manifest(declared or OCI_MANIFEST, config, parsed)


def select_platform(index: Index, wanted: Platform) -> Descriptor:
    """The index entry for `wanted`, as Docker matches: os and architecture, then variant.

    An entry without a variant serves any variant of its architecture (arm64 images
    rarely say v8); an exact variant wins over that.
    """
    candidates = [
        d for d in index.manifests
        if d.platform is not None
        and d.platform.os == wanted.os
        and d.platform.architecture == wanted.architecture
        and d.media_type not in INDEX_TYPES
    ]
    exact = [d for d in candidates if d.platform and d.platform.variant == wanted.variant]
    loose = [d for d in candidates if d.platform and not d.platform.variant]
    anyvariant = candidates if not wanted.variant else []
    for group in (exact, loose, anyvariant):
        if group:
            return group[0]
    shown = "/".join(p for p in (wanted.os, wanted.architecture, wanted.variant) if p)
    raise NotFound(f"no matching manifest for {shown} in the manifest list entries")


def manifest_bytes(config: Descriptor, layers: list[Descriptor], media_type: str) -> bytes:
    """A schema 2 / OCI image manifest, compact as registries store it."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    doc["config"] = {"mediaType": config.media_type, "digest": config.digest,
                     "size": config.size}
    doc["layers"] = [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                     for d in layers]
    return json.dumps(doc, separators=(",", ":")).encode()


__all__ = [
    "ACCEPT",
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_LIMIT",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Descriptor",
    "Index",
    "Manifest",
    "manifest_bytes",
    "parse_manifest",
    "select_platform",
]
