"""What a scanned archive holds: its images, from a docker-archive's manifest.json or
an OCI layout's index.json (nested indexes, the host's platform, attestations skipped).

Every path and digest named in the JSON goes through the `Archive`, which keeps it
inside the archive and checks blobs against their digests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

from engine.errors import InvalidParameter
from engine.images.archive.formats import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    invalid_archive,
)
from engine.images.archive.tarsafety import Archive, Entry, parse_json, scan
from engine.images.importer import host_architecture
from engine.images.model import Image
from engine.images.ociconfig import image_from_config
from engine.images.reference import Reference, parse

MAX_INDEX_DEPTH = 4

_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}\Z")


@attrs.frozen
class LayerRef:
    """A layer in the archive and, for OCI, the digest its descriptor promises."""

    entry: Entry
    blob_digest: str | None


@attrs.define
class Loadable:
    config: bytes
    image: Image
    layers: list[LayerRef]
    tags: list[Reference]


def _config(data: bytes) -> Image:
    image = image_from_config(data)
    if image.os not in ("", "linux"):
        raise InvalidParameter(f"cannot load {image.os} image on linux")
    return image


def _loaded_tag(text: Any) -> Reference:
    if not isinstance(text, str):
        raise invalid_archive(f"RepoTags entry {text!r} is not a string")
    ref = parse(text, default_tag=False)
    if ref.tag is None or ref.digest is not None:
        raise InvalidParameter(f"invalid tag {text!r}")
    return ref


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_archive(f"{what} must be a list of strings")
    return list(value)


def _docker_images(archive: Archive) -> list[Loadable]:
    """manifest.json: [{"Config": path, "RepoTags": [...], "Layers": [path, ...]}]."""
    items = archive.metadata("manifest.json")
    if items is None:
        raise InvalidParameter("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(items, list):
        raise invalid_archive("manifest.json must be a list")
    out = []
    for i, item in enumerate(items):
        what = f"manifest.json entry {i}"
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise invalid_archive(f"{what} has no Config path")
        config = archive.read(archive.locate(item["Config"], f"{what} Config"), f"{what} Config")
        image = _config(config)
        paths = _str_list(item.get("Layers"), f"{what} Layers")
        if len(paths) != len(image.diff_ids):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(paths)}, "
                f"got {len(image.diff_ids)}"
            )
        layers = [LayerRef(archive.locate(p, f"{what} Layers"), None) for p in paths]
        tags = [_loaded_tag(t) for t in _str_list(item.get("RepoTags"), f"{what} RepoTags")]
        out.append(Loadable(config, image, layers, tags))
    return out


def _descriptor(value: Any, what: str) -> tuple[str, int, str]:
    """(digest, size, media type) of an OCI descriptor; sha256 digests only."""
    if not isinstance(value, dict):
        raise invalid_archive(f"{what}: a descriptor must be an object")
    digest = value.get("digest")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise invalid_archive(f"{what}: unsupported or malformed digest {digest!r}")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid_archive(f"{what}: descriptor {digest} has no valid size")
    media = value.get("mediaType")
    return digest, size, media if isinstance(media, str) else ""


def _descriptors(doc: Any, what: str) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise invalid_archive(f"{what} has no manifests list")
    return list(doc["manifests"])


def _annotations(desc: Any) -> dict[str, Any]:
    found = desc.get("annotations") if isinstance(desc, dict) else None
    return found if isinstance(found, dict) else {}


def _annotated_name(desc: Any) -> Reference | None:
    """The image name an index entry carries; a bare tag or a bad name gives none."""
    notes = _annotations(desc)
    name = notes.get(ANNOTATION_IMAGE_NAME)
    if not isinstance(name, str) or not name:
        name = notes.get(ANNOTATION_REF_NAME)
        if not isinstance(name, str) or not ("/" in name or ":" in name):
            return None
    try:
        ref = parse(name)
    except InvalidParameter:
        return None
    return ref if ref.digest is None else None


def _is_attestation(desc: Any) -> bool:
    platform = desc.get("platform") if isinstance(desc, dict) else None
    unknown = isinstance(platform, dict) and platform.get("os") == "unknown"
    return unknown or _annotations(desc).get("vnd.docker.reference.type") == "attestation-manifest"


def _pick_platform(children: list[Any], digest: str) -> list[Any]:
    """From a multi-platform index, the host's image (there is one store per platform)."""
    if not any(isinstance(c.get("platform"), dict) for c in children if isinstance(c, dict)):
        return children
    arch, variant = host_architecture()
    offered = []
    for child in children:
        p = child.get("platform") if isinstance(child, dict) else None
        if not isinstance(p, dict):
            continue
        offered.append("/".join(str(x) for x in (p.get("os"), p.get("architecture"),
                                                  p.get("variant")) if x))
        if p.get("os") == "linux" and p.get("architecture") == arch and (
                not variant or p.get("variant") in (None, "", variant)):
            return [child]
    if len(children) == 1:
        return children
    raise invalid_archive(f"index {digest} has no image for linux/{arch} (it has {', '.join(offered)})")


def _oci_image(archive: Archive, doc: dict[str, Any], digest: str) -> Loadable:
    what = f"manifest {digest}"
    config_digest, config_size, _ = _descriptor(doc.get("config"), f"{what} config")
    config = archive.read_blob(config_digest, config_size, f"config of {what}")
    image = _config(config)
    descriptors = doc.get("layers")
    if not isinstance(descriptors, list):
        raise invalid_archive(f"{what} has no layers list")
    if len(descriptors) != len(image.diff_ids):
        raise invalid_archive(
            f"{what} lists {len(descriptors)} layers, its config {len(image.diff_ids)}"
        )
    layers = []
    for i, desc in enumerate(descriptors):
        layer_digest, size, _ = _descriptor(desc, f"{what} layer {i}")
        entry = archive.blob(layer_digest, size, f"layer {i} of {what}")
        layers.append(LayerRef(entry, layer_digest))
    return Loadable(config, image, layers, [])


def _walk(archive: Archive, desc: Any, depth: int, what: str) -> list[Loadable]:
    digest, size, media = _descriptor(desc, what)
    doc = parse_json(archive.read_blob(digest, size, what), f"blob {digest}")
    if not isinstance(doc, dict):
        raise invalid_archive(f"blob {digest} is not a JSON object")
    if not media and isinstance(doc.get("mediaType"), str):
        media = doc["mediaType"]
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        if depth >= MAX_INDEX_DEPTH:
            raise invalid_archive(f"indexes are nested more than {MAX_INDEX_DEPTH} deep")
        children = [c for c in _descriptors(doc, f"index {digest}") if not _is_attestation(c)]
        found = []
        for child in _pick_platform(children, digest):
            found += _walk(archive, child, depth + 1, f"index {digest}")
        return found
    if media in MANIFEST_TYPES or (not media and "layers" in doc):
        return [_oci_image(archive, doc, digest)]
    raise invalid_archive(f"blob {digest} is neither an image index nor a manifest ({media!r})")


def _oci_images(archive: Archive) -> list[Loadable]:
    """index.json → (nested indexes →) manifests → config and layers."""
    index = archive.metadata("index.json")
    images: dict[str, Loadable] = {}
    for desc in _descriptors(index, "index.json"):
        if _is_attestation(desc):
            continue
        name = _annotated_name(desc)
        for found in _walk(archive, desc, 0, "index.json"):
            known = images.setdefault(found.image.id, found)
            if name is not None and name not in known.tags:
                known.tags.append(name)
    return list(images.values())


def read_images(path: Path) -> tuple[Archive, list[Loadable]]:
    archive = scan(path)
    if archive.has("manifest.json"):
        return archive, _docker_images(archive)
    if archive.has("index.json"):
        return archive, _oci_images(archive)
    raise invalid_archive("it holds neither a manifest.json (docker save) nor an index.json (OCI layout)")


__all__ = ["MAX_INDEX_DEPTH", "LayerRef", "Loadable", "read_images"]
