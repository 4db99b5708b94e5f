"""Loading's bytes on disk: the upload spooled to the store's tmp/, a compressed upload
made a plain tar, and each layer copied out and checked against its digests.

All of it blocking except `spool`; the caller runs the rest in worker threads.
"""

from __future__ import annotations

import hashlib
import lzma
import zlib
from collections.abc import AsyncIterable, Sequence
from pathlib import Path
from typing import IO

import trio

from engine.errors import SystemFailure
from engine.images.archive.contents import LayerRef
from engine.images.archive.formats import BLOCK, CHUNK, invalid_archive
from engine.images.store import ImageStore
from engine.tarball.compression import decompressed


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
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        size = min(size, self._left, 4 * CHUNK)
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
        while self.read(CHUNK):
            pass


def extract_layer(archive: Path, layer: LayerRef, diff_id: str, dest: Path) -> str:
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
            while data := stream.read(CHUNK):
                diff.update(data)
            tee.drain()
    except _WriteFailed as exc:
        raise SystemFailure(f"cannot copy layer {entry.name} out of the archive: {exc}") from None
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise invalid_archive(f"layer {entry.name} cannot be read: {exc}") from None
    blob = "sha256:" + tee.hasher.hexdigest()
    if layer.blob_digest is not None and blob != layer.blob_digest:
        raise invalid_archive(f"layer {entry.name} does not match its digest {layer.blob_digest} "
                       f"(got {blob})")
    got = "sha256:" + diff.hexdigest()
    if got != diff_id:
        raise invalid_archive(f"layer {entry.name} does not match the image config: expected diff ID "
                       f"{diff_id}, got {got}")
    return blob


_TAR_MAGIC_OFFSET = 257
_COMPRESSED_MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def plain_tar(path: Path, dest: Path) -> Path:
    """The archive as a plain tar: `docker save | gzip` uploads are decompressed to `dest`."""
    with open(path, "rb") as f:
        head = f.read(BLOCK)
    if head[_TAR_MAGIC_OFFSET:_TAR_MAGIC_OFFSET + 5] == b"ustar":
        return path
    if not head.startswith(_COMPRESSED_MAGICS):
        return path  # not compressed: tarfile says what is wrong with it
    try:
        with open(path, "rb") as f, open(dest, "xb") as out:
            stream = decompressed(f)
            while data := stream.read(CHUNK):
                out.write(data)
    except (EOFError, zlib.error, lzma.LZMAError) as exc:
        raise invalid_archive(f"cannot decompress it: {exc}") from None
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the data
            raise
        raise invalid_archive(f"cannot decompress it: {exc}") from None
    return dest


async def spool(store: ImageStore, chunks: AsyncIterable[bytes]) -> Path:
    """Write the upload to the store's tmp/, in batches, off the trio thread."""
    path = store.tmp_path("load-")
    f = await trio.to_thread.run_sync(lambda: open(path, "xb"))  # noqa: SIM115
    try:
        batch: list[bytes] = []
        batched = 0
        async for chunk in chunks:
            batch.append(chunk)
            batched += len(chunk)
            if batched >= 4 * CHUNK:
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


def remove_files(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


__all__ = ["extract_layer", "plain_tar", "remove_files", "spool"]
