"""A layer's uncompressed tar out of the store: its size before the header, its bytes
after, and the diff ID checked so a corrupt layer never completes in an archive."""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import zlib
from collections.abc import AsyncGenerator
from typing import IO, Any

import attrs
import trio

from engine.errors import SystemFailure
from engine.images.archive.formats import CHUNK
from engine.images.archive.layout import LayerSource, padding
from engine.images.store import ImageStore
from engine.tarball.compression import decompressed


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


SIZES = _SizeCache()


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
        while data := reader.read(CHUNK):
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


async def layer_source(store: ImageStore, diff_id: str) -> LayerSource:
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
    known = SIZES.get(blob)
    if known is None:
        known = await trio.to_thread.run_sync(_measure, source)
        SIZES.put(blob, known)
    return attrs.evolve(source, size=known)


async def layer_chunks(source: LayerSource) -> AsyncGenerator[bytes, None]:
    """The layer's tar and its padding; the last piece only once the diff ID checks out."""
    reader = await trio.to_thread.run_sync(_LayerReader, source)
    try:
        hasher = hashlib.sha256()
        total = 0
        pending = b""
        while True:
            data = await trio.to_thread.run_sync(reader.read, CHUNK)
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
        yield pending + padding(total)
    finally:
        reader.close()


__all__ = ["SIZES", "layer_chunks", "layer_source"]
