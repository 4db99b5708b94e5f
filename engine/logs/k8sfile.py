"""conmon's k8s-file log format: parse records, join partial lines.

One record per line::

    2026-11-24T22:48:28.823818517+00:00 stdout F hello
    <RFC3339Nano, 9 digits, ±HH:MM> <stdout|stderr> <F|P> <content>

conmon takes one timestamp per read() chunk (≤ 8 KiB) and writes one record per line
of the chunk. ``F`` means the content ended with a newline (the record's own ``\\n`` *is*
that newline); ``P`` means the chunk ended mid-line (conmon adds a ``\\n`` to end the
record). A line of the container's output is therefore a run of ``P`` records of one
stream followed by one ``F`` record of the same stream; the other stream's records may
be interleaved. The joined line takes the timestamp of its first record (when it began).

Parsing is done on whole blocks (`K8sParser.feed`), not line by line from a file object,
because reading a million lines must cost about a microsecond each.
"""

from __future__ import annotations

import calendar
import logging
import time
from typing import Literal

import attrs

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]

#: A joined line longer than this is let out in pieces (the first ones ``partial``), so
#: a container that never writes a newline cannot make a reader hold gigabytes.
MAX_LINE = 64 * 1024 * 1024

_NS = 1_000_000_000
_TS_LEN = 35  # len("2026-11-24T22:48:28.823818517+00:00")
_SPACE = 0x20
_F = ord("F")
_P = ord("P")
_STREAMS: dict[bytes, Stream] = {b"stdout": "stdout", b"stderr": "stderr"}


@attrs.frozen
class LogLine:
    """One line of a container's output, as `docker logs` shows it.

    `data` ends with ``b"\\n"`` unless `partial`: a line that has no newline (yet), such
    as the last output of a container that exited mid-line.
    """

    stream: Stream
    timestamp_ns: int
    data: bytes
    partial: bool = False


@attrs.frozen
class Record:
    """One k8s-file record, before partial records are joined."""

    stream: Stream
    timestamp_ns: int
    content: bytes
    partial: bool


class MalformedRecord(ValueError):
    """A line that is not a k8s-file record."""


def _seconds(stamp: bytes) -> int:
    """Seconds since the epoch of ``YYYY-MM-DDTHH:MM:SS.fffffffff±HH:MM`` (fraction ignored)."""
    if (
        stamp[4:5] != b"-"
        or stamp[7:8] != b"-"
        or stamp[10:11] not in (b"T", b"t")
        or stamp[13:14] != b":"
        or stamp[16:17] != b":"
        or stamp[29:30] not in (b"+", b"-")
        or stamp[32:33] != b":"
    ):
        raise MalformedRecord(f"bad timestamp {stamp!r}")
    parts = (stamp[0:4], stamp[5:7], stamp[8:10], stamp[11:13], stamp[14:16], stamp[17:19])
    if not all(p.isdigit() for p in parts) or not (stamp[30:32] + stamp[33:35]).isdigit():
        raise MalformedRecord(f"bad timestamp {stamp!r}")
    year, month, day, hour, minute, second = (int(p) for p in parts)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60):
        raise MalformedRecord(f"bad timestamp {stamp!r}")
    offset = int(stamp[30:32]) * 3600 + int(stamp[33:35]) * 60
    if stamp[29:30] == b"-":
        offset = -offset
    # timegm copes with a leap second (:60) by rolling into the next minute.
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset


def parse_timestamp(stamp: bytes) -> int:
    """Nanoseconds since the epoch of a k8s-file timestamp (exactly 9 fractional digits)."""
    if len(stamp) != _TS_LEN or stamp[19:20] != b"." or not stamp[20:29].isdigit():
        raise MalformedRecord(f"bad timestamp {stamp!r}")
    return _seconds(stamp) * _NS + int(stamp[20:29])


def parse_record(line: bytes) -> Record:
    """Parse one record (without its terminating ``\\n``); `MalformedRecord` if it is not one."""
    head = line.split(b" ", 3)
    if len(head) < 3:
        raise MalformedRecord(f"not a k8s-file record: {line[:80]!r}")
    stream = _STREAMS.get(head[1])
    if stream is None or head[2] not in (b"F", b"P"):
        raise MalformedRecord(f"not a k8s-file record: {line[:80]!r}")
    content = head[3] if len(head) == 4 else b""
    return Record(stream, parse_timestamp(head[0]), content, head[2] == b"P")


def format_record(stream: Stream, timestamp_ns: int, content: bytes, partial: bool) -> bytes:
    """One record as conmon writes it (UTC offset); for tests and for tools that write logs."""
    secs, frac = divmod(timestamp_ns, _NS)
    t = time.gmtime(secs)
    flag = b"P" if partial else b"F"
    stamp = b"%04d-%02d-%02dT%02d:%02d:%02d.%09d+00:00" % (
        t.tm_year,
        t.tm_mon,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        frac,
    )
    return b"%s %s %s %s\n" % (stamp, stream.encode(), flag, content)


@attrs.define(eq=False)
class _Pending:
    """The partial records of one stream seen so far: the start of a line."""

    timestamp_ns: int
    chunks: list[bytes]
    size: int


@attrs.define(eq=False)
class K8sParser:
    """Turns k8s-file bytes, fed block by block, into whole `LogLine`s.

    Keeps what it cannot finish yet: the bytes after the last ``\\n`` (a record conmon
    is still writing) and each stream's partial records. Feed it the next block of the
    same file, or the first block of the file that replaced it: partial lines may
    straddle conmon's log reopen. The parser is not thread-safe but may be handed to a
    worker thread, one call at a time.
    """

    max_line: int = MAX_LINE
    #: Records skipped because they were not k8s-file records.
    malformed: int = 0
    _rest: bytes = b""
    _pending: dict[Stream, _Pending] = attrs.field(factory=dict)
    _last_stamp: bytes = b""
    _last_ns: int = 0
    _sec_cache: dict[bytes, int] = attrs.field(factory=dict)

    @property
    def has_incomplete_record(self) -> bool:
        """Whether bytes of a record without its ``\\n`` are held back."""
        return bool(self._rest)

    def feed(self, data: bytes) -> list[LogLine]:
        """Parse `data` (any slice of the file, continuing the previous one)."""
        if self._rest:
            data = self._rest + data
        end = data.rfind(b"\n")
        if end < 0:
            self._rest = data
            return []
        self._rest = data[end + 1 :]
        return self._parse(data[:end].split(b"\n"))

    def drop_incomplete(self) -> bytes:
        """Forget a trailing record that will never be finished (its file was replaced)."""
        rest, self._rest = self._rest, b""
        if rest:
            self.malformed += 1
            log.warning("k8s-file: dropping an unfinished record: %r", rest[:80])
        return rest

    def discard_incomplete(self) -> bytes:
        """Forget a trailing record known to be torn (a write cut short; see `engine.logs.gaps`)."""
        rest, self._rest = self._rest, b""
        return rest

    def finish(self) -> list[LogLine]:
        """Let out the lines still waiting for their ``F`` record, as partial lines.

        Called when no more output can come (the container has exited) or for a one-off
        read of what is in the file now.
        """
        out = [
            LogLine(stream, p.timestamp_ns, b"".join(p.chunks), True)
            for stream, p in sorted(self._pending.items(), key=lambda kv: (kv[1].timestamp_ns, kv[0]))
        ]
        self._pending.clear()
        return out

    def seed(self, line: LogLine) -> None:
        """Start a stream's pending line with `line` (partial), as if its records were fed."""
        self._pending[line.stream] = _Pending(line.timestamp_ns, [line.data], len(line.data))

    def record(self, line: bytes) -> Record | None:
        """One record (without its ``\\n``), or None for garbage (counted and logged)."""
        try:
            if (
                len(line) >= 45
                and line[35] == _SPACE
                and line[42] == _SPACE
                and line[44] == _SPACE
                and line[43] in (_F, _P)
            ):
                stream = _STREAMS.get(line[36:42])
                if stream is not None:
                    ns = self._stamp_ns(line[:_TS_LEN])
                    return Record(stream, ns, line[45:], line[43] == _P)
            return parse_record(line)
        except (MalformedRecord, ValueError):
            self.malformed += 1
            log.warning("k8s-file: skipping a malformed record: %r", line[:80])
            return None

    def _stamp_ns(self, stamp: bytes) -> int:
        """`parse_timestamp` with a cache of the per-second part (the slow part)."""
        if len(stamp) != _TS_LEN or stamp[19] != 0x2E or not stamp[20:29].isdigit():
            raise MalformedRecord(f"bad timestamp {stamp!r}")
        key = stamp[:19] + stamp[29:]
        secs = self._sec_cache.get(key)
        if secs is None:
            secs = _seconds(stamp)
            if len(self._sec_cache) > 4096:
                self._sec_cache.clear()
            self._sec_cache[key] = secs
        return secs * _NS + int(stamp[20:29])

    def _parse(self, records: list[bytes]) -> list[LogLine]:
        out: list[LogLine] = []
        append = out.append
        pending = self._pending
        streams = _STREAMS
        last_stamp, last_ns = self._last_stamp, self._last_ns
        for rec in records:
            # Fast path: conmon's fixed layout, "<35-byte stamp> stdout F <content>".
            if len(rec) >= 44 and rec[35] == _SPACE and rec[42] == _SPACE:
                stream = streams.get(rec[36:42])
                flag = rec[43]
                if (flag != _F and flag != _P) or (len(rec) > 44 and rec[44] != _SPACE):
                    stream = None
                content = rec[45:]
            else:
                stream = None
            if stream is not None:
                stamp = rec[:_TS_LEN]
                if stamp == last_stamp:
                    ns = last_ns
                else:
                    try:
                        ns = self._stamp_ns(stamp)
                    except (MalformedRecord, ValueError):
                        stream = None
                    else:
                        last_stamp, last_ns = stamp, ns
            if stream is None:
                # Other layouts (say a 5-digit year) are still records; garbage is not.
                try:
                    r = parse_record(rec)
                except (MalformedRecord, ValueError):
                    self.malformed += 1
                    log.warning("k8s-file: skipping a malformed record: %r", rec[:80])
                    continue
                stream, ns, content = r.stream, r.timestamp_ns, r.content
                flag = _P if r.partial else _F
            if flag == _F:
                if not pending:
                    append(LogLine(stream, ns, content + b"\n", False))
                    continue
                p = pending.pop(stream, None)
                if p is None:
                    append(LogLine(stream, ns, content + b"\n", False))
                else:
                    p.chunks.append(content)
                    p.chunks.append(b"\n")
                    append(LogLine(stream, p.timestamp_ns, b"".join(p.chunks), False))
            else:
                p = pending.get(stream)
                if p is None:
                    pending[stream] = p = _Pending(ns, [], 0)
                p.chunks.append(content)
                p.size += len(content)
                if p.size >= self.max_line:
                    # Too long to hold: let out what we have; the rest follows.
                    del pending[stream]
                    append(LogLine(stream, p.timestamp_ns, b"".join(p.chunks), True))
        self._last_stamp, self._last_ns = last_stamp, last_ns
        return out
