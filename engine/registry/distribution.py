"""`GET /distribution/{name}/json`: what a registry holds under a name, without pulling.

dockerd's answer, for `docker service create` and docker-py's `inspect_distribution`
/ `images.get_registry_data`: the manifest's descriptor (media type, digest, size)
and the platforms it serves. A tag is resolved with `HEAD` (a `GET` when the registry
gives no digest for it); the manifest is then fetched by digest and checked against it.
An index lists its entries' platforms; an image manifest's platform is read from its
config blob (dockerd does this for Docker's schema 2 only and leaves OCI manifests
without platforms; we read both).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs
import httpx

from engine.errors import EngineError, Forbidden, InvalidParameter, NotFound, SystemFailure, Unauthorized
from engine.images.reference import Reference
from engine.registry import media
from engine.registry.auth import Credentials
from engine.registry.client import (
    RegistryClient,
    Repository,
    describe_failure,
    read_limited,
    registry_errors,
)

_CONFIG_LIMIT = 8 * 1024 * 1024

#: The status dockerd gives a registry's error code (the code's own HTTP status).
_BY_CODE: dict[str, type[EngineError]] = {
    "UNAUTHORIZED": Unauthorized, "DENIED": Forbidden, "NAME_UNKNOWN": NotFound,
    "MANIFEST_UNKNOWN": NotFound, "BLOB_UNKNOWN": NotFound, "NAME_INVALID": InvalidParameter,
    "TAG_INVALID": InvalidParameter, "MANIFEST_INVALID": InvalidParameter,
    "DIGEST_INVALID": InvalidParameter,
}
_BY_STATUS: dict[int, type[EngineError]] = {
    401: Unauthorized, 403: Forbidden, 404: NotFound, 400: InvalidParameter,
}


@attrs.frozen
class PlatformInfo:
    """An OCI platform as dockerd reports it (`os.version` and `os.features` included)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()


@attrs.frozen
class DistributionInfo:
    descriptor: media.Descriptor
    platforms: tuple[PlatformInfo, ...]


def _platform(raw: Any) -> PlatformInfo | None:
    if not isinstance(raw, dict):
        return None
    features = raw.get("os.features")
    return PlatformInfo(
        os=str(raw.get("os") or ""), architecture=str(raw.get("architecture") or ""),
        variant=str(raw.get("variant") or ""), os_version=str(raw.get("os.version") or ""),
        os_features=tuple(str(f) for f in features) if isinstance(features, list) else (),
    )


async def _error(response: httpx.Response) -> EngineError:
    """A registry's refusal as dockerd passes it on: its error text, its code's status."""
    await response.aread()
    errors = registry_errors(response)
    kind = _BY_CODE.get(errors[0].code) if errors else None
    kind = kind or _BY_STATUS.get(response.status_code, SystemFailure)
    return kind(describe_failure(response))


class DistributionInspector:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    async def inspect(self, ref: Reference, credentials: Credentials | None) -> DistributionInfo:
        repo = self.client.repository(ref, credentials)
        if ref.digest is not None:
            digest, media_type, size = ref.digest, "", 0
        else:
            digest, media_type, size = await self._resolve_tag(repo, ref.tag or "latest")
        data, served_type = await self._get(repo, f"manifests/{digest}", media.ACCEPT,
                                            media.MANIFEST_LIMIT)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise InvalidParameter(f"manifest verification failed for digest {digest}")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise InvalidParameter(f"invalid manifest: {exc}") from None
        parsed = media.parse_manifest(data, served_type)  # refuses schema 1, as dockerd
        descriptor = media.Descriptor(parsed.media_type or media_type or served_type, digest,
                                      size or len(data))
        if isinstance(parsed, media.Index):
            raw = doc.get("manifests") if isinstance(doc, dict) else None
            found = [_platform(m.get("platform")) for m in raw or [] if isinstance(m, dict)]
            platforms = tuple(p for p in found if p is not None)
        else:
            config, _ = await self._get(repo, f"blobs/{parsed.config.digest}", "*/*",
                                        _CONFIG_LIMIT)
            try:
                platform = _platform(json.loads(config))
            except ValueError:
                platform = None
            usable = platform is not None and (platform.os or platform.architecture)
            platforms = (platform,) if platform is not None and usable else ()
        return DistributionInfo(descriptor, platforms)

    async def _resolve_tag(self, repo: Repository, tag: str) -> tuple[str, str, int]:
        """(digest, media type, size) of a tag: `HEAD`, or `GET` if that tells no digest."""
        response = await repo.request("HEAD", f"manifests/{tag}",
                                      headers={"Accept": media.ACCEPT})
        await response.aclose()
        digest = response.headers.get("docker-content-digest", "")
        if 200 <= response.status_code < 400 and digest.startswith("sha256:"):
            return (digest, response.headers.get("content-type", "").split(";")[0],
                    int(response.headers.get("content-length") or 0))
        data, served_type = await self._get(repo, f"manifests/{tag}", media.ACCEPT,
                                            media.MANIFEST_LIMIT)
        return "sha256:" + hashlib.sha256(data).hexdigest(), served_type, len(data)

    @staticmethod
    async def _get(repo: Repository, path: str, accept: str, limit: int) -> tuple[bytes, str]:
        async with repo.stream(path, {"Accept": accept}) as response:
            if response.status_code != 200:
                raise await _error(response)
            data = await read_limited(response, limit, path.split("/")[0].rstrip("s"))
            return data, response.headers.get("content-type", "").split(";")[0]


__all__ = ["DistributionInfo", "DistributionInspector", "PlatformInfo"]
