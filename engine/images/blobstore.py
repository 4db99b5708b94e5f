"""Content-addressed blobs (`blobs/sha256/<hex>`) and the uploads that become them.

A blob is streamed into `tmp/`, hashed on the way and fsynced, then renamed into
`blobs/sha256/` and the directory fsynced: a blob that is visible is complete and
durable. Blobs are image config blobs and the layer tarballs layers came from; what
keeps a blob alive is the image store's business, not this module's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterable, Set
from contextlib import suppress
from pathlib import Path

import trio

from engine import fsutil
from engine.batching import write_in_batches
from engine.errors import InvalidParameter, SystemFailure

log = logging.getLogger(__name__)

HEX64 = re.compile(r"^[a-f0-9]{64}\Z")
_HASH_BATCH = 4 * 1024 * 1024


def hex_of(digest: str) -> str:
    """`sha256:<hex>` -> `<hex>`: the file name of a blob, a layer or an index record."""
    return digest.removeprefix("sha256:")


class CorruptBlob(SystemFailure):
    """A stored blob no longer matches its digest: it has been set aside, never used."""


class BlobStore:
    """The files of `blobs/sha256/`; uploads in progress live in the store's `tmp/`."""

    def __init__(self, directory: Path, tmp_dir: Path, *, durable: bool) -> None:
        self.directory = directory
        self.tmp_dir = tmp_dir
        self.durable = durable

    def path(self, digest: str) -> Path:
        if not digest.startswith("sha256:") or not HEX64.match(hex_of(digest)):
            raise InvalidParameter(f"invalid digest {digest!r}")
        return self.directory / hex_of(digest)

    # receiving -----------------------------------------------------------------
    async def receive(self, chunks: AsyncIterable[bytes]) -> tuple[Path, str, int]:
        """Stream `chunks` to a temporary file, hashing as it goes: (path, digest, size)."""
        fd, name = await trio.to_thread.run_sync(
            lambda: tempfile.mkstemp(prefix="upload-", dir=self.tmp_dir)
        )
        path = Path(name)
        hasher = hashlib.sha256()
        f = os.fdopen(fd, "wb")

        def write(data: bytes) -> None:
            hasher.update(data)
            f.write(data)

        def finish() -> None:
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
            f.close()

        try:
            size = await write_in_batches(chunks, write)
            await trio.to_thread.run_sync(finish)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._discard_upload, f, path)
            raise
        return path, "sha256:" + hasher.hexdigest(), size

    @staticmethod
    def _discard_upload(f: object, path: Path) -> None:
        close = getattr(f, "close", None)
        if close is not None:
            close()
        path.unlink(missing_ok=True)

    async def write(self, chunks: AsyncIterable[bytes], *, expected: str | None = None
                    ) -> tuple[str, int]:
        """Store a blob (verified against `expected` if given): (digest, size)."""
        path, digest, size = await self.receive(chunks)
        try:
            if expected is not None and digest != expected:
                raise InvalidParameter(
                    f"blob digest mismatch: expected {expected}, got {digest}"
                )
            await trio.to_thread.run_sync(self.commit_sync, path, digest)
        finally:
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        return digest, size

    def commit_sync(self, tmp: Path, digest: str) -> None:
        """Rename a received file (already durable) into place, unless the blob exists."""
        final = self.path(digest)
        if final.exists():
            return
        os.chmod(tmp, 0o644)
        os.rename(tmp, final)
        if self.durable:
            fsutil.fsync_dir(self.directory)

    def write_config_sync(self, image_id: str, data: bytes) -> None:
        """Store an image's config blob (its ID is the digest) by an atomic write."""
        blob = self.directory / hex_of(image_id)
        if not blob.exists():
            fsutil.atomic_write(blob, data, mode=0o644, durable=self.durable)

    # reading -------------------------------------------------------------------
    def read_verified_sync(self, hexid: str) -> bytes:
        """The blob's bytes; ValueError if they no longer hash to its name."""
        data = (self.directory / hexid).read_bytes()
        if hashlib.sha256(data).hexdigest() != hexid:
            raise ValueError("config blob does not match its digest")
        return data

    async def intact(self, digest: str) -> bool:
        """Whether the stored bytes still hash to `digest` (FileNotFoundError if absent)."""
        path = self.path(digest)

        def check() -> bool:
            hasher = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_HASH_BATCH):
                    hasher.update(chunk)
            return "sha256:" + hasher.hexdigest() == digest

        return await trio.to_thread.run_sync(check)

    # removing ------------------------------------------------------------------
    def hide_sync(self, digest: str) -> Path | None:
        """Rename the blob out of sight into `tmp/` (no fsync); where it went, if it was there."""
        doomed = self.tmp_dir / f"del-{hex_of(digest)[:12]}-{secrets.token_hex(4)}"
        with suppress(FileNotFoundError):
            os.rename(self.directory / hex_of(digest), doomed)
            return doomed
        return None

    def remove_unneeded_sync(self, needed: Set[str]) -> None:
        """Delete every blob whose hex name is not in `needed` (start-up's sweep)."""
        removed = False
        for entry in self.directory.iterdir():
            if entry.name not in needed:
                log.info("removing unreferenced blob %s", entry.name)
                entry.unlink()
                removed = True
        if removed and self.durable:
            fsutil.fsync_dir(self.directory)
