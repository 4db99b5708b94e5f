"""What both directions agree on: media types, annotations, blob paths, the 400 error.

Save writes these names and load reads them; one place keeps the two in step (a saved
archive must load back).
"""

from __future__ import annotations

from engine.errors import InvalidParameter

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({MEDIA_INDEX, _DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, _DOCKER_MANIFEST})
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

CHUNK = 1024 * 1024
#: tar's block: headers and member data are padded to it
BLOCK = 512


def digest_hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def blob_name(digest: str) -> str:
    """Where a blob lives in an OCI layout (and, since Docker 25, in a docker-archive)."""
    return f"blobs/sha256/{digest_hex(digest)}"


def invalid_archive(message: str) -> InvalidParameter:
    return InvalidParameter(f"invalid archive: {message}")


__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "BLOCK",
    "CHUNK",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_MANIFEST",
    "OCI_LAYOUT",
    "blob_name",
    "digest_hex",
    "invalid_archive",
]
