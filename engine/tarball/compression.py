"""A tar stream as it came, compressed or not, made the plain tar (by its magic bytes)."""

from __future__ import annotations

import bz2
import gzip
import importlib
import lzma
from typing import IO, Any, cast

from engine.errors import InvalidParameter

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


class _Prefixed:
    """A reader that first returns bytes already peeked from `inner`."""

    def __init__(self, prefix: bytes, inner: IO[bytes]) -> None:
        self._prefix = prefix
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data = self._prefix + self._inner.read()
                self._prefix = b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._inner.read(size - len(data))
            return data
        return self._inner.read(size)

    def readable(self) -> bool:
        return True


def _read_exactly(f: IO[bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def decompressed(fileobj: IO[bytes]) -> Any:
    """`fileobj` as an uncompressed stream, whatever of tar/gzip/zstd/bzip2/xz it holds."""
    head = _read_exactly(fileobj, 6)
    raw = cast(IO[bytes], _Prefixed(head, fileobj))
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(_ZSTD_MAGIC):
        try:
            zstandard = importlib.import_module("zstandard")
        except ImportError:
            raise InvalidParameter(
                "the layer is zstd-compressed, but this moorage has no zstd support "
                "(install the 'zstandard' Python package)"
            ) from None
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if head.startswith(_BZIP2_MAGIC):
        return bz2.BZ2File(raw)
    if head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(raw)
    return raw


__all__ = ["decompressed"]
