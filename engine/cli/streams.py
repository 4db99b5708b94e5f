"""Incremental decoders for the byte streams the Docker API sends.

Both decoders are pure state machines fed with whatever `recv()` returned, so a
stream can be shown as it arrives (`logs -f`, `run`) and the framing can be tested
without sockets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
FRAME_HEADER_SIZE = 8


class FramingError(Exception):
    """The peer sent bytes that do not follow the framing it announced."""


@attrs.define
class ChunkedDecoder:
    """Decodes `Transfer-Encoding: chunked`, yielding data as soon as it arrives.

    Partial chunks are handed out immediately rather than held back until the chunk
    is complete: a follower of a slow log stream must see bytes when they come.
    """

    _buffer: bytearray = attrs.field(factory=bytearray)
    _state: str = "size"  # size | data | data-end | trailer | done
    _remaining: int = 0

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the wire; return the body bytes they completed."""
        self._buffer += data
        out: list[bytes] = []
        while True:
            if self._state == "size":
                line = self._take_line()
                if line is None:
                    break
                size_text = line.split(b";", 1)[0].strip()
                try:
                    self._remaining = int(size_text, 16)
                except ValueError:
                    raise FramingError(f"bad chunk size {size_text!r}") from None
                self._state = "data" if self._remaining else "trailer"
            elif self._state == "data":
                if not self._buffer:
                    break
                piece = bytes(self._buffer[: self._remaining])
                del self._buffer[: len(piece)]
                self._remaining -= len(piece)
                out.append(piece)
                if self._remaining == 0:
                    self._state = "data-end"
            elif self._state == "data-end":
                if len(self._buffer) < 2:
                    break
                if self._buffer[:2] != b"\r\n":
                    raise FramingError("chunk not terminated by CRLF")
                del self._buffer[:2]
                self._state = "size"
            elif self._state == "trailer":
                line = self._take_line()
                if line is None:
                    break
                if not line:
                    self._state = "done"
            else:  # done: anything further belongs to no body of ours
                break
        return out

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > 4096:
                raise FramingError("chunk header line too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line


@attrs.define
class FrameDemuxer:
    """Splits Docker's multiplexed stream: 8-byte header `[stream,0,0,0,len(u32 BE)]`.

    Payload pieces are returned as they arrive, tagged with their stream, so a large
    frame is written out progressively instead of being buffered whole.
    """

    _header: bytearray = attrs.field(factory=bytearray)
    _stream: int = 0
    _remaining: int = 0

    @property
    def idle(self) -> bool:
        """True between frames: EOF here is a clean end of stream."""
        return not self._header and self._remaining == 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._remaining == 0:
                need = FRAME_HEADER_SIZE - len(self._header)
                self._header += view[pos : pos + need]
                pos += min(need, len(view) - pos)
                if len(self._header) < FRAME_HEADER_SIZE:
                    break
                self._stream = self._header[0]
                self._remaining = int.from_bytes(self._header[4:8], "big")
                self._header.clear()
                if self._stream > SYSTEMERR:
                    raise FramingError(f"unknown stream id {self._stream} in multiplexed stream")
                continue
            piece = bytes(view[pos : pos + self._remaining])
            pos += len(piece)
            self._remaining -= len(piece)
            if out and out[-1][0] == self._stream:
                out[-1] = (self._stream, out[-1][1] + piece)
            else:
                out.append((self._stream, piece))
        return out


def encode_frame(stream: int, payload: bytes) -> bytes:
    """One multiplexed frame; the inverse of `FrameDemuxer` (tests, fake servers)."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def encode_chunked(pieces: Iterable[bytes]) -> bytes:
    """A whole chunked body; the inverse of `ChunkedDecoder` (tests, fake servers)."""
    out = bytearray()
    for piece in pieces:
        if piece:
            out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def json_lines(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Newline-delimited JSON objects (pull, import, build, events) as they complete.

    Docker's encoder writes one object per line, but a reader must not rely on an
    object arriving in one chunk, nor on the last one ending with a newline.
    """
    pending = b""
    decoder = json.JSONDecoder()
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield decoder.decode(line.decode())
    if pending.strip():
        text = pending.decode().strip()
        # Some servers concatenate objects without newlines: take them one by one.
        pos = 0
        while pos < len(text):
            obj, end = decoder.raw_decode(text, pos)
            yield obj
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1
