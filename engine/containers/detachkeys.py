"""Detach keys: the key sequence that leaves an attached terminal with its process running.

Docker's notation: keys separated by commas, each a single character or `ctrl-<c>`
with c one of `@`, `a`-`z`, `[`, `\\`, `]`, `^`, `_` (`DEL` is byte 127); the default
is `ctrl-p,ctrl-q`. As in Docker, only sessions with a terminal watch for them: without
one, every byte is data.

The docker CLI watches its own terminal for the sequence and hangs up without
sending it, so moord sees a plain disconnect; other clients (docker-py, curl) rely on
the daemon to notice the sequence in the input, which `EscapeWatch` does.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from engine.errors import InvalidParameter

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

_CONTROL_SUFFIXES = "@abcdefghijklmnopqrstuvwxyz[\\]^_"


def parse_detach_keys(spec: str) -> bytes:
    """The bytes of a detach-key spec; an empty spec is the default sequence."""
    spec = spec or DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            out.append(ord(key))
        elif key == "DEL":
            out.append(127)
        elif key.startswith("ctrl-") and len(key) == 6 and key[5] in _CONTROL_SUFFIXES:
            out.append(_CONTROL_SUFFIXES.index(key[5]))
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    if any(b > 127 for b in out):
        raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


@attrs.define
class EscapeWatch:
    """Finds the detach sequence in a stream of input chunks.

    Bytes that might begin the sequence are held back until the next byte settles it;
    if it does not, they are passed on after all, so no keystroke is lost.
    """

    keys: bytes
    matched: int = 0
    detached: bool = False

    def feed(self, data: bytes) -> bytes:
        """The part of `data` to pass on; sets `detached` when the sequence completes
        (and drops whatever followed it in the chunk)."""
        if self.detached:
            return b""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.detached = True
                    self.matched = 0
                    return bytes(out)
                continue
            # not the next key: keep the longest tail that may still begin the sequence
            pending = self.keys[: self.matched] + bytes([byte])
            start = next(i for i in range(1, len(pending) + 1)
                         if self.keys.startswith(pending[i:]))
            out += pending[:start]
            self.matched = len(pending) - start
        return bytes(out)


class ByteSource(Protocol):
    async def receive_some(self, max_bytes: int = 65536) -> bytes: ...


@attrs.define
class DetachingInput:
    """A client's input with the detach sequence taken out: `receive_some` gives b""
    after the sequence, as at the end of input; `watch.detached` tells the two apart."""

    source: ByteSource
    watch: EscapeWatch

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        while not self.watch.detached:
            data = await self.source.receive_some(max_bytes)
            if not data:
                return b""
            data = self.watch.feed(data)
            if data:
                return data
        return b""


__all__ = ["DEFAULT_DETACH_KEYS", "DetachingInput", "EscapeWatch", "parse_detach_keys"]
