"""Docker's stream encodings: stdcopy frames, log lines as `docker logs` prints them.

Non-tty output (attach, exec, logs) travels in *frames*: an 8-byte header
``[stream, 0, 0, 0, size as uint32 big-endian]`` and the payload, so a client can split
stdout from stderr on one connection. Tty output is sent raw. Docker's clients choose
between the two by the container's ``Tty``, not by the media type, but API ≥ 1.42
clients are told which one it is in ``Content-Type``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote_plus

from engine.logs.k8sfile import LogLine

MULTIPLEXED_STREAM: Final = "application/vnd.docker.multiplexed-stream"
RAW_STREAM: Final = "application/vnd.docker.raw-stream"

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
#: Errors of the daemon itself, in band; the docker CLI turns them into its exit error.
SYSTEMERR: Final = 3

#: Payloads above this are cut into several frames: clients concatenate frames of one
#: stream, and nobody needs one 4 GiB allocation.
MAX_FRAME_PAYLOAD: Final = 16 * 1024 * 1024

_HEADER = struct.Struct(">BxxxL")
_STREAM_IDS: Final = {"stdout": STDOUT, "stderr": STDERR}
_NS: Final = 1_000_000_000


def frame(stream_id: int, data: bytes) -> bytes:
    """`data` as one or more stdcopy frames of `stream_id`; empty data gives no frame."""
    if not 0 <= stream_id <= 3:
        raise ValueError(f"stream id {stream_id} is not 0..3")
    if len(data) <= MAX_FRAME_PAYLOAD:
        return _HEADER.pack(stream_id, len(data)) + data if data else b""
    parts: list[bytes] = []
    for i in range(0, len(data), MAX_FRAME_PAYLOAD):
        chunk = data[i : i + MAX_FRAME_PAYLOAD]
        parts += (_HEADER.pack(stream_id, len(chunk)), chunk)
    return b"".join(parts)


def system_error_frame(message: str) -> bytes:
    """An error met after the response began, as Docker reports it in the stream."""
    return frame(SYSTEMERR, message.rstrip("\n").encode() + b"\n")


def stream_media_type(*, tty: bool, api_version: str) -> str:
    """``Content-Type`` of an attach/logs/exec stream, by Docker's rule (framed since 1.42)."""
    if tty:
        return RAW_STREAM
    try:
        major, minor = (int(p) for p in api_version.split(".", 1))
    except ValueError:
        return MULTIPLEXED_STREAM
    return MULTIPLEXED_STREAM if (major, minor) >= (1, 42) else RAW_STREAM


def details_prefix(attrs: Mapping[str, str] | None = None) -> bytes:
    """What ``details=1`` puts before each line: ``k=v,k=v`` (url-encoded, sorted) and a space.

    Docker writes the space even when there are no attributes, so an engine without log
    attributes prints each line with one leading space, as dockerd does.
    """
    if not attrs:
        return b" "
    pairs = ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(attrs.items()))
    return pairs.encode() + b" "


class TimestampFormatter:
    """Docker's fixed-width RFC3339Nano in UTC (``2006-01-02T15:04:05.000000000Z``) + space.

    Remembers the previous result and its second: conmon stamps a whole read chunk
    (often a hundred lines) with one time, and formatting the date is the slow part.
    """

    __slots__ = ("_last", "_last_ns", "_prefix", "_secs")

    def __init__(self) -> None:
        self._secs = -1
        self._prefix = b""
        self._last_ns = -1
        self._last = b""

    def __call__(self, timestamp_ns: int) -> bytes:
        if timestamp_ns == self._last_ns:
            return self._last
        secs, frac = divmod(timestamp_ns, _NS)
        if secs != self._secs:
            self._secs = secs
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)).encode()
        self._last_ns = timestamp_ns
        self._last = b"%s.%09dZ " % (self._prefix, frac)
        return self._last


def format_timestamp(timestamp_ns: int) -> str:
    """One timestamp as `docker logs -t` prints it (without the trailing space)."""
    return TimestampFormatter()(timestamp_ns)[:-1].decode()


def encode_log_lines(
    lines: Iterable[LogLine],
    *,
    multiplexed: bool,
    timestamps: bool = False,
    details: bool = False,
    attrs: Mapping[str, str] | None = None,
    stamp: TimestampFormatter | None = None,
) -> bytes:
    """A batch of log lines as the logs endpoint sends them: one frame per line, or raw.

    Docker writes each message as its own frame; clients such as docker-py's
    ``logs(stream=True)`` hand out one frame at a time, so lines are not merged.
    With `timestamps`, pass the same `stamp` across the batches of one response to keep
    its cache warm; without, `stamp` is ignored.
    """
    prefix = details_prefix(attrs) if details else b""
    stamp = (stamp or TimestampFormatter()) if timestamps else None
    parts: list[bytes] = []
    append = parts.append
    pack = _HEADER.pack
    ids = _STREAM_IDS
    for line in lines:
        payload = line.data
        if prefix:
            payload = prefix + payload
        if stamp is not None:
            payload = stamp(line.timestamp_ns) + payload
        if not multiplexed:
            append(payload)
        elif len(payload) <= MAX_FRAME_PAYLOAD:
            append(pack(ids[line.stream], len(payload)))
            append(payload)
        else:
            append(frame(ids[line.stream], payload))
    return b"".join(parts)


def parse_tail(value: str | None) -> int | None:
    """The ``tail`` query argument: a line count, or None for everything.

    Like dockerd: ``all``, empty, negative or unreadable values mean all lines.
    """
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n >= 0 else None
