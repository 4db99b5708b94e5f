"""`docker save` and `docker load`: image archives out of and into the store.

Saving writes what Docker 25+ writes: a docker-archive (`manifest.json`,
`repositories`) that is at the same time an OCI image layout (`oci-layout`,
`index.json`, `blobs/sha256/…`), so docker, skopeo and umoci all read it. Every layer
goes out as the uncompressed tar whose sha256 is its diff ID, decompressed from the
kept tarball while streaming; the tarball is checked against its digest first and the
stream against the diff ID, and the last bytes of a layer are held back until that
check passes, so a corrupt layer never completes in an archive.

Loading reads docker-archives (with or without the OCI parts) and pure OCI layout
archives (`skopeo copy … oci-archive:`). The upload is spooled to the store's tmp/,
then parsed by `tarfile` in a worker thread: parsing only, nothing from the archive is
written under a name it chose. Archives are hostile until proven otherwise: absolute
or `..` member names, links leaving the archive, hard links and devices, sizes beyond
the end, JSON files over `MAX_JSON_BYTES`, paths in JSON outside the archive, blobs
that do not match their digests and layers that do not match the config's diff IDs
are all refused (400) before the store is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import posixpath
import re
import tarfile
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from engine.errors import InvalidParameter, NotFound, SystemFailure
from engine.images.importer import host_architecture
from engine.images.model import Image
from engine.images.ociconfig import image_from_config
from engine.images.reference import Reference, is_full_id, looks_like_id, parse
from engine.images.store import ImageStore
from engine.images.unpack import decompressed

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_INDEX_TYPES = frozenset({MEDIA_INDEX, _DOCKER_LIST})
_MANIFEST_TYPES = frozenset({MEDIA_MANIFEST, _DOCKER_MANIFEST})
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

#: manifest.json, index.json, manifests and configs: real ones are kilobytes.
MAX_JSON_BYTES = 8 * 1024 * 1024
#: an archive holds a few members per layer; a million headers is an attack on memory.
MAX_MEMBERS = 100_000
MAX_LINK_HOPS = 16
MAX_INDEX_DEPTH = 4

_CHUNK = 1024 * 1024
_BLOCK = 512
_SHA256 = re.compile(r"^sha256:[a-f0-9]{64}\Z")
_METADATA = ("manifest.json", "index.json", "oci-layout", "repositories")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{_hex(digest)}"


def _invalid(message: str) -> InvalidParameter:
    return InvalidParameter(f"invalid archive: {message}")


# saving: which images and tags -----------------------------------------------------


@attrs.frozen
class SavedImage:
    """One image going into an archive, with the tags it carries there."""

    image: Image
    tags: tuple[Reference, ...] = ()


def _resolve(store: ImageStore, name: str) -> Image:
    try:
        return store.resolve(name)
    except NotFound:
        raise NotFound(f"No such image: {name}") from None


def _repository_tags(store: ImageStore, ref: Reference) -> list[tuple[Image, Reference]]:
    """Every tag of `ref`'s repository, as Docker saves `docker save busybox`."""
    found = [
        (image, r)
        for image in store.list()
        for r in store.references(image.id)
        if r.digest is None and r.tag is not None and r.name == ref.name
    ]
    return sorted(found, key=lambda pair: pair[1].full_name())


def select_images(store: ImageStore, names: Sequence[str]) -> list[SavedImage]:
    """The images `names` ask for, in the order asked, and the tags to record.

    Docker's rules: `busybox:1` brings that tag only, a bare `busybox` every tag of the
    repository, an ID (or prefix) or a digest reference no tag at all.
    """
    if not names:
        raise InvalidParameter("no image names given: name at least one image to save")
    chosen: dict[str, tuple[Image, list[Reference]]] = {}

    def add(image: Image, ref: Reference | None) -> None:
        _, tags = chosen.setdefault(image.id, (image, []))
        if ref is not None and ref not in tags:
            tags.append(ref)

    for name in names:
        if not name.strip():
            raise InvalidParameter("image name cannot be blank")
        if is_full_id(name):
            add(_resolve(store, name), None)
            continue
        try:
            ref = parse(name, default_tag=False)
        except InvalidParameter:
            if not looks_like_id(name):
                raise
            add(_resolve(store, name), None)
            continue
        if ref.digest is not None or ref.repository == "sha256":
            add(_resolve(store, name), None)
        elif ref.tag is not None:
            add(_resolve(store, name), ref)
        else:
            tagged = _repository_tags(store, ref)
            if not tagged:
                add(_resolve(store, name), None)
            for image, tag in tagged:
                add(image, tag)
    return [SavedImage(image, tuple(tags)) for image, tags in chosen.values()]


# saving: the archive's members -------------------------------------------------------


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
        blobs[_hex(image.id)] = Member(_blob_name(image.id), data=config)
        descriptors = []
        for diff_id in image.diff_ids:
            source = layers[diff_id]
            blobs.setdefault(_hex(diff_id), Member(_blob_name(diff_id), layer=source))
            descriptors.append({"mediaType": MEDIA_LAYER, "digest": diff_id, "size": source.size})
        manifest = _json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": image.id, "size": len(config)},
            "layers": descriptors,
        })
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        blobs[_hex(digest)] = Member(_blob_name(digest), data=manifest)
        descriptor = {"mediaType": MEDIA_MANIFEST, "digest": digest, "size": len(manifest)}
        for ref in saved.tags:
            entries.append({**descriptor, "annotations": {
                ANNOTATION_IMAGE_NAME: ref.full_name(), ANNOTATION_REF_NAME: ref.tag}})
            if image.diff_ids:
                repositories.setdefault(ref.repository, {})[str(ref.tag)] = _hex(image.diff_ids[-1])
        if not saved.tags:
            entries.append(descriptor)
        items.append({
            "Config": _blob_name(image.id),
            "RepoTags": [ref.familiar() for ref in saved.tags] or None,
            "Layers": [_blob_name(d) for d in image.diff_ids],
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


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


# saving: layer sizes and streams --------------------------------------------------------


class _SizeCache:
    """Uncompressed sizes of compressed layer blobs, by blob digest.

    A tar header needs the size before the data; learning it costs a decompression
    pass. Blobs are content-addressed, so a size once measured stays true.
    """

    def __init__(self) -> None:
        self._sizes: dict[str, int] = {}

    def get(self, blob: str) -> int | None:
        return self._sizes.get(blob)

    def put(self, blob: str, size: int) -> None:
        self._sizes[blob] = size


_SIZES = _SizeCache()


class _LayerReader:
    """A layer's tar read from its blob, decompressing if needed; closes both files."""

    def __init__(self, source: LayerSource) -> None:
        self._raw: IO[bytes] = open(source.path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._stream: Any = decompressed(self._raw) if source.compressed else self._raw
        except BaseException:
            self._raw.close()
            raise

    def read(self, size: int) -> bytes:
        data: bytes = self._stream.read(size)
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._stream is not self._raw:
                self._stream.close()
        self._raw.close()


def _measure(source: LayerSource) -> int:
    """Decompress a layer blob to learn its tar size, checking it is the diff ID's tar."""
    reader = _LayerReader(source)
    hasher = hashlib.sha256()
    size = 0
    try:
        while data := reader.read(_CHUNK):
            hasher.update(data)
            size += len(data)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise SystemFailure(
            f"the stored tarball of layer {source.diff_id} cannot be decompressed: {exc}"
        ) from None
    finally:
        reader.close()
    got = "sha256:" + hasher.hexdigest()
    if got != source.diff_id:
        raise SystemFailure(
            f"the stored tarball of layer {source.diff_id} decompresses to {got}; "
            "remove the image and pull or load it again"
        )
    return size


async def _layer_source(store: ImageStore, diff_id: str) -> LayerSource:
    blob = store.layer_blob(diff_id)
    if blob is None:
        raise SystemFailure(
            f"cannot save layer {diff_id}: its tarball is no longer in the store (it was "
            "found corrupt and set aside); remove the image and pull or load it again"
        )
    path = await store.verified_blob(blob)  # CorruptBlob: it never goes out
    if blob == diff_id:  # the uncompressed tar itself
        size = await trio.to_thread.run_sync(lambda: path.stat().st_size)
        return LayerSource(diff_id, path, False, size)
    source = LayerSource(diff_id, path, True, 0)
    known = _SIZES.get(blob)
    if known is None:
        known = await trio.to_thread.run_sync(_measure, source)
        _SIZES.put(blob, known)
    return attrs.evolve(source, size=known)


async def _layer_chunks(source: LayerSource) -> AsyncGenerator[bytes, None]:
    """The layer's tar and its padding; the last piece only once the diff ID checks out."""
    reader = await trio.to_thread.run_sync(_LayerReader, source)
    try:
        hasher = hashlib.sha256()
        total = 0
        pending = b""
        while True:
            data = await trio.to_thread.run_sync(reader.read, _CHUNK)
            if not data:
                break
            hasher.update(data)
            total += len(data)
            if total > source.size:
                break
            if pending:
                yield pending
            pending = data
        got = "sha256:" + hasher.hexdigest()
        if total != source.size or got != source.diff_id:
            raise SystemFailure(
                f"layer {source.diff_id} changed while it was being saved (read {total} "
                f"bytes hashing to {got}); the archive was cut short"
            )
        yield pending + _padding(total)
    finally:
        reader.close()


@attrs.define(eq=False)
class SavePlan:
    """An archive ready to stream: blobs verified, sizes known, metadata rendered."""

    store: ImageStore
    images: list[SavedImage]
    members: list[Member]

    @property
    def diff_ids(self) -> list[str]:
        return list(dict.fromkeys(d for s in self.images for d in s.image.diff_ids))

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The tar, member by member; use with `contextlib.aclosing`."""
        with self.store.pin_layers(self.diff_ids):
            for member in self.members:
                header = tar_header(member.name, member.size, directory=member.directory)
                if member.layer is None:
                    yield header + member.data + _padding(len(member.data))
                    continue
                yield header
                async for piece in _layer_chunks(member.layer):
                    yield piece
            yield b"\0" * (2 * _BLOCK)


async def prepare_save(store: ImageStore, names: Sequence[str]) -> SavePlan:
    """Everything that can fail before the first byte: names, blobs, sizes.

    Errors here keep their status codes; afterwards only a disk changing under us can
    stop the stream, and then the archive is cut short rather than finished wrong.
    """
    images = select_images(store, names)
    diff_ids = list(dict.fromkeys(d for s in images for d in s.image.diff_ids))
    configs: dict[str, bytes] = {}
    layers: dict[str, LayerSource] = {}
    with store.pin_layers(diff_ids):
        for saved in images:
            path = await store.verified_blob(saved.image.id)
            configs[saved.image.id] = await trio.to_thread.run_sync(path.read_bytes)
        for diff_id in diff_ids:
            layers[diff_id] = await _layer_source(store, diff_id)
    return SavePlan(store, images, layout(images, configs, layers))


# loading: reading the uploaded archive --------------------------------------------------


@attrs.frozen
class _Entry:
    """A regular file inside the spooled archive: where its bytes are."""

    name: str
    offset: int
    size: int


def _member_name(raw: str) -> str:
    """A member name relative to the archive root; absolute and `..` names are refused."""
    if raw.startswith("/"):
        raise _invalid(f"member {raw!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _invalid(f"member {raw!r} climbs out of the archive with '..'")
    return "/".join(parts)


def _reference_path(text: str, what: str) -> str:
    """A path named inside the archive's JSON: relative, and staying inside."""
    if not text or text.startswith("/"):
        raise _invalid(f"{what} names {text!r}, outside the archive")
    cleaned = posixpath.normpath(text)
    if cleaned == ".." or cleaned.startswith("../"):
        raise _invalid(f"{what} names {text!r}, outside the archive")
    return cleaned


def _link_target(name: str, target: str) -> str:
    """Where an in-archive symlink points, as a member name (older docker save wrote
    links between layers shared by two images); a link leaving the archive is refused."""
    if not target or target.startswith("/"):
        raise _invalid(f"member {name!r} is a link to {target!r}, outside the archive")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if joined == ".." or joined.startswith("../"):
        raise _invalid(f"member {name!r} is a link to {target!r}, outside the archive")
    return joined


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"{what} is not valid JSON: {exc}") from None


@attrs.define
class _Archive:
    """The members of a spooled archive, by name; reads go by offset, never by path."""

    path: Path
    files: dict[str, _Entry]
    links: dict[str, str]

    def has(self, name: str) -> bool:
        return name in self.files or name in self.links

    def locate(self, text: str, what: str) -> _Entry:
        """The regular file a JSON-given path names, following in-archive symlinks."""
        name = _reference_path(text, what)
        for _ in range(MAX_LINK_HOPS):
            entry = self.files.get(name)
            if entry is not None:
                return entry
            target = self.links.get(name)
            if target is None:
                raise _invalid(f"{what} names {text!r}, which is not in the archive")
            name = target
        raise _invalid(f"{what} names {text!r}: too many levels of symbolic links")

    def read(self, entry: _Entry, what: str, limit: int = MAX_JSON_BYTES) -> bytes:
        if entry.size > limit:
            raise _invalid(
                f"{what} ({entry.name}) is too large: {entry.size} bytes, at most {limit} accepted"
            )
        with open(self.path, "rb") as f:
            f.seek(entry.offset)
            data = f.read(entry.size)
        if len(data) != entry.size:
            raise _invalid(f"member {entry.name!r} is truncated")
        return data

    def metadata(self, name: str) -> Any:
        """manifest.json or index.json: a regular file at the top, as JSON."""
        entry = self.files.get(name)
        if entry is None:
            raise _invalid(f"{name} is a link; it must be a regular file")
        return _parse_json(self.read(entry, name), name)

    def blob(self, digest: str, size: int | None, what: str) -> _Entry:
        name = _blob_name(digest)
        if not self.has(name):
            raise _invalid(f"blob {digest} ({what}) is missing")
        entry = self.locate(name, what)
        if size is not None and entry.size != size:
            raise _invalid(f"blob {digest} is {entry.size} bytes, its descriptor says {size}")
        return entry

    def read_blob(self, digest: str, size: int | None, what: str) -> bytes:
        data = self.read(self.blob(digest, size, what), what)
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise _invalid(f"blob {digest} ({what}) does not match its digest (got {got})")
        return data


def _scan(path: Path) -> _Archive:
    """Index the archive's members; anything that is no plain file or directory, or
    whose name or size cannot be trusted, refuses the whole archive."""
    files: dict[str, _Entry] = {}
    links: dict[str, str] = {}
    end = path.stat().st_size
    count = 0
    try:
        with tarfile.open(path, "r:") as tar:
            while (info := tar.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise _invalid(f"more than {MAX_MEMBERS} members")
                name = _member_name(info.name)
                if info.isdir():
                    continue
                if not name:
                    raise _invalid(f"member {info.name!r} has no name")
                if name in files or name in links:
                    raise _invalid(f"member {name!r} appears twice")
                if info.issym():
                    links[name] = _link_target(name, info.linkname)
                elif info.islnk():
                    raise _invalid(f"member {name!r} is a hard link; image archives hold none")
                elif not info.isreg() or info.issparse():
                    raise _invalid(f"member {name!r} is not a regular file or directory")
                elif info.offset_data + info.size > end:
                    raise _invalid(
                        f"member {name!r} says it holds {info.size} bytes, but the archive "
                        "ends before them"
                    )
                else:
                    files[name] = _Entry(name, info.offset_data, info.size)
    except tarfile.TarError as exc:
        raise _invalid(f"not a readable tar archive ({exc})") from None
    for name in _METADATA:
        if name in links:
            raise _invalid(f"{name} is a link; it must be a regular file")
    return _Archive(path, files, links)


# loading: what the archive holds ---------------------------------------------------------


@attrs.frozen
class _LayerRef:
    """A layer in the archive and, for OCI, the digest its descriptor promises."""

    entry: _Entry
    blob_digest: str | None


@attrs.define
class _Loadable:
    config: bytes
    image: Image
    layers: list[_LayerRef]
    tags: list[Reference]


def _config(data: bytes) -> Image:
    image = image_from_config(data)
    if image.os not in ("", "linux"):
        raise InvalidParameter(f"cannot load {image.os} image on linux")
    return image


def _loaded_tag(text: Any) -> Reference:
    if not isinstance(text, str):
        raise _invalid(f"RepoTags entry {text!r} is not a string")
    ref = parse(text, default_tag=False)
    if ref.tag is None or ref.digest is not None:
        raise InvalidParameter(f"invalid tag {text!r}")
    return ref


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{what} must be a list of strings")
    return list(value)


def _docker_images(archive: _Archive) -> list[_Loadable]:
    """manifest.json: [{"Config": path, "RepoTags": [...], "Layers": [path, ...]}]."""
    items = archive.metadata("manifest.json")
    if items is None:
        raise InvalidParameter("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(items, list):
        raise _invalid("manifest.json must be a list")
    out = []
    for i, item in enumerate(items):
        what = f"manifest.json entry {i}"
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise _invalid(f"{what} has no Config path")
        config = archive.read(archive.locate(item["Config"], f"{what} Config"), f"{what} Config")
        image = _config(config)
        paths = _str_list(item.get("Layers"), f"{what} Layers")
        if len(paths) != len(image.diff_ids):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(paths)}, "
                f"got {len(image.diff_ids)}"
            )
        layers = [_LayerRef(archive.locate(p, f"{what} Layers"), None) for p in paths]
        tags = [_loaded_tag(t) for t in _str_list(item.get("RepoTags"), f"{what} RepoTags")]
        out.append(_Loadable(config, image, layers, tags))
    return out


def _descriptor(value: Any, what: str) -> tuple[str, int, str]:
    """(digest, size, media type) of an OCI descriptor; sha256 digests only."""
    if not isinstance(value, dict):
        raise _invalid(f"{what}: a descriptor must be an object")
    digest = value.get("digest")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise _invalid(f"{what}: unsupported or malformed digest {digest!r}")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{what}: descriptor {digest} has no valid size")
    media = value.get("mediaType")
    return digest, size, media if isinstance(media, str) else ""


def _descriptors(doc: Any, what: str) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise _invalid(f"{what} has no manifests list")
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
    raise _invalid(f"index {digest} has no image for linux/{arch} (it has {', '.join(offered)})")


def _oci_image(archive: _Archive, doc: dict[str, Any], digest: str) -> _Loadable:
    what = f"manifest {digest}"
    config_digest, config_size, _ = _descriptor(doc.get("config"), f"{what} config")
    config = archive.read_blob(config_digest, config_size, f"config of {what}")
    image = _config(config)
    descriptors = doc.get("layers")
    if not isinstance(descriptors, list):
        raise _invalid(f"{what} has no layers list")
    if len(descriptors) != len(image.diff_ids):
        raise _invalid(
            f"{what} lists {len(descriptors)} layers, its config {len(image.diff_ids)}"
        )
    layers = []
    for i, desc in enumerate(descriptors):
        layer_digest, size, _ = _descriptor(desc, f"{what} layer {i}")
        entry = archive.blob(layer_digest, size, f"layer {i} of {what}")
        layers.append(_LayerRef(entry, layer_digest))
    return _Loadable(config, image, layers, [])


def _walk(archive: _Archive, desc: Any, depth: int, what: str) -> list[_Loadable]:
    digest, size, media = _descriptor(desc, what)
    doc = _parse_json(archive.read_blob(digest, size, what), f"blob {digest}")
    if not isinstance(doc, dict):
        raise _invalid(f"blob {digest} is not a JSON object")
    if not media and isinstance(doc.get("mediaType"), str):
        media = doc["mediaType"]
    if media in _INDEX_TYPES or (not media and "manifests" in doc):
        if depth >= MAX_INDEX_DEPTH:
            raise _invalid(f"indexes are nested more than {MAX_INDEX_DEPTH} deep")
        children = [c for c in _descriptors(doc, f"index {digest}") if not _is_attestation(c)]
        found = []
        for child in _pick_platform(children, digest):
            found += _walk(archive, child, depth + 1, f"index {digest}")
        return found
    if media in _MANIFEST_TYPES or (not media and "layers" in doc):
        return [_oci_image(archive, doc, digest)]
    raise _invalid(f"blob {digest} is neither an image index nor a manifest ({media!r})")


def _oci_images(archive: _Archive) -> list[_Loadable]:
    """index.json → (nested indexes →) manifests → config and layers."""
    index = archive.metadata("index.json")
    images: dict[str, _Loadable] = {}
    for desc in _descriptors(index, "index.json"):
        if _is_attestation(desc):
            continue
        name = _annotated_name(desc)
        for found in _walk(archive, desc, 0, "index.json"):
            known = images.setdefault(found.image.id, found)
            if name is not None and name not in known.tags:
                known.tags.append(name)
    return list(images.values())


def _plan(path: Path) -> tuple[_Archive, list[_Loadable]]:
    archive = _scan(path)
    if archive.has("manifest.json"):
        return archive, _docker_images(archive)
    if archive.has("index.json"):
        return archive, _oci_images(archive)
    raise _invalid("it holds neither a manifest.json (docker save) nor an index.json (OCI layout)")


# loading: bytes to disk ----------------------------------------------------------------


class _WriteFailed(Exception):
    """Writing our own copy failed: a disk problem, not a bad archive."""


class _Tee:
    """Reads a member's bytes (at most `size`), hashing them and copying them to `out`."""

    def __init__(self, src: IO[bytes], size: int, out: IO[bytes]) -> None:
        self._src = src
        self._left = size
        self._out = out
        self.hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        size = min(size, self._left, 4 * _CHUNK)
        data = self._src.read(size) if size else b""
        self._left -= len(data)
        if size and not data:
            raise EOFError("the archive ends inside this member")
        self.hasher.update(data)
        try:
            self._out.write(data)
        except OSError as exc:
            raise _WriteFailed(str(exc)) from exc
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _extract_layer(archive: Path, layer: _LayerRef, diff_id: str, dest: Path) -> str:
    """Copy a layer out of the archive to `dest`, checking its digest and diff ID.

    Returns the blob digest (of the bytes as they are, compressed or not).
    """
    entry = layer.entry
    diff = hashlib.sha256()
    try:
        with open(archive, "rb") as src, open(dest, "xb") as out:
            src.seek(entry.offset)
            tee = _Tee(src, entry.size, out)
            stream = decompressed(tee)  # type: ignore[arg-type]
            while data := stream.read(_CHUNK):
                diff.update(data)
            tee.drain()
    except _WriteFailed as exc:
        raise SystemFailure(f"cannot copy layer {entry.name} out of the archive: {exc}") from None
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise _invalid(f"layer {entry.name} cannot be read: {exc}") from None
    blob = "sha256:" + tee.hasher.hexdigest()
    if layer.blob_digest is not None and blob != layer.blob_digest:
        raise _invalid(f"layer {entry.name} does not match its digest {layer.blob_digest} "
                       f"(got {blob})")
    got = "sha256:" + diff.hexdigest()
    if got != diff_id:
        raise _invalid(f"layer {entry.name} does not match the image config: expected diff ID "
                       f"{diff_id}, got {got}")
    return blob


_TAR_MAGIC_OFFSET = 257
_COMPRESSED_MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def _plain_tar(path: Path, dest: Path) -> Path:
    """The archive as a plain tar: `docker save | gzip` uploads are decompressed to `dest`."""
    with open(path, "rb") as f:
        head = f.read(_BLOCK)
    if head[_TAR_MAGIC_OFFSET:_TAR_MAGIC_OFFSET + 5] == b"ustar":
        return path
    if not head.startswith(_COMPRESSED_MAGICS):
        return path  # not compressed: tarfile says what is wrong with it
    try:
        with open(path, "rb") as f, open(dest, "xb") as out:
            stream = decompressed(f)
            while data := stream.read(_CHUNK):
                out.write(data)
    except (EOFError, zlib.error, lzma.LZMAError) as exc:
        raise _invalid(f"cannot decompress it: {exc}") from None
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the data
            raise
        raise _invalid(f"cannot decompress it: {exc}") from None
    return dest


async def _spool(store: ImageStore, chunks: AsyncIterable[bytes]) -> Path:
    """Write the upload to the store's tmp/, in batches, off the trio thread."""
    path = store.tmp_path("load-")
    f = await trio.to_thread.run_sync(lambda: open(path, "xb"))  # noqa: SIM115
    try:
        batch: list[bytes] = []
        batched = 0
        async for chunk in chunks:
            batch.append(chunk)
            batched += len(chunk)
            if batched >= 4 * _CHUNK:
                data = b"".join(batch)
                batch, batched = [], 0
                await trio.to_thread.run_sync(f.write, data)
        if batch:
            await trio.to_thread.run_sync(f.write, b"".join(batch))
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(f.close)
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        raise
    await trio.to_thread.run_sync(f.close)
    return path


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# loading: into the store ---------------------------------------------------------------


@attrs.frozen
class LoadedTag:
    """A tag a load set, and the image it was taken from (Docker reports that)."""

    name: str  # familiar: busybox:latest
    previous: str | None = None


@attrs.frozen
class LoadedImage:
    """What loading one image did, for the lines `docker load` prints."""

    image_id: str
    tags: tuple[LoadedTag, ...] = ()
    # layers unpacked for it: (diff ID, bytes of the tar); layers already stored are skipped
    new_layers: tuple[tuple[str, int], ...] = ()


def _tag_target(store: ImageStore, ref: Reference) -> str | None:
    try:
        return store.resolve(ref.full_name()).id
    except (NotFound, InvalidParameter):
        return None


async def load_archive(store: ImageStore, chunks: AsyncIterable[bytes]) -> list[LoadedImage]:
    """`docker load`: every image of the archive into the store, with its tags.

    All checks (structure, digests, diff IDs) run before the store is touched. Layers
    already stored are skipped (one whose tarball was set aside as corrupt gets the
    archive's back, so it can be saved and pushed again); all are pinned while the
    images are recorded.
    """
    temporaries = [await _spool(store, chunks), store.tmp_path("load-")]
    try:
        tar = await trio.to_thread.run_sync(_plain_tar, temporaries[0], temporaries[1])
        archive, loadables = await trio.to_thread.run_sync(_plan, tar)
        diff_ids = list(dict.fromkeys(d for item in loadables for d in item.image.diff_ids))
        with store.pin_layers(diff_ids):
            needed: dict[str, tuple[_LayerRef, str]] = {}
            for item in loadables:
                for diff_id, layer in zip(item.image.diff_ids, item.layers, strict=True):
                    lacking = not store.has_layer(diff_id) or store.layer_blob(diff_id) is None
                    if lacking and diff_id not in needed:
                        needed[diff_id] = (layer, item.image.id)
            extracted: dict[str, tuple[Path, str]] = {}
            for diff_id, (layer, _) in needed.items():
                dest = store.tmp_path("layer-")
                temporaries.append(dest)
                blob = await trio.to_thread.run_sync(
                    _extract_layer, archive.path, layer, diff_id, dest)
                extracted[diff_id] = (dest, blob)
            await trio.to_thread.run_sync(_remove, temporaries[:2])  # free the disk early
            sizes: dict[str, int] = {}
            for diff_id, (dest, blob) in extracted.items():
                if store.has_layer(diff_id):  # lost its tarball, or a concurrent load was first
                    await store.keep_blob(diff_id, dest, blob)
                    continue
                stats = await store.ingest_layer(dest, blob_digest=blob, expected_diff_id=diff_id)
                sizes[diff_id] = stats.tar_size
            results = []
            for item in loadables:
                image = await store.add_image(item.config)
                tags = []
                for ref in item.tags:
                    previous = _tag_target(store, ref)
                    await store.add_reference(image.id, ref)
                    moved = previous if previous not in (None, image.id) else None
                    tags.append(LoadedTag(ref.familiar(), moved))
                new = tuple((d, sizes[d]) for d, (_, owner) in needed.items()
                            if owner == image.id and d in sizes)
                results.append(LoadedImage(image.id, tuple(tags), new))
            return results
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_remove, temporaries)


__all__ = [
    "MAX_JSON_BYTES",
    "MAX_MEMBERS",
    "LayerSource",
    "LoadedImage",
    "LoadedTag",
    "Member",
    "SavePlan",
    "SavedImage",
    "layout",
    "load_archive",
    "prepare_save",
    "select_images",
    "tar_header",
]
