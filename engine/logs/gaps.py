"""Where a container's log has a hole: output conmon read but could not write (disk full).

conmon 2.1.6 drops a chunk whose write fails (ENOSPC) and carries on, saying so only on
its stderr, which is /dev/null once it has daemonized. The hole leaves no trace in the
file but one: a write cut short at a block boundary leaves a *torn* record (no ``\\n``),
and conmon's next successful write is glued to it. moord's disk watcher
(`engine.logs.diskwatch`) sees the disk full and records a `LogGap`: the file (by inode)
and the offset where writing stopped. Readers (`engine.logs.reader`) stop at that offset,
drop the torn bytes, and put a marker line in the stream there.

Gaps live in memory while they are open (the disk is full: nothing can be written) and in
``<log>-gaps.json`` beside the log once closed, for later reads and moord restarts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from engine.logs.k8sfile import LogLine, Stream

log = logging.getLogger(__name__)

FileKey = tuple[int, int]  # (st_dev, st_ino)

#: How many closed gaps a log keeps on record (the oldest go first).
MAX_KEPT = 256


def gaps_path(log_path: Path) -> Path:
    """The gap record of a log: ``ctr.log-gaps.json`` (not a rotated-file name)."""
    return log_path.with_name(f"{log_path.name}-gaps.json")


@attrs.frozen
class LogGap:
    """Output lost from one log file at `offset`: what a reader shows in its place.

    `since_ns`..`until_ns` bound when the lost output was written: the last record written
    before the hole (or the last look that saw room on the disk) and the first one after
    it (or the first look that saw room again); `until_ns` is 0 while the disk is full.
    """

    key: FileKey
    offset: int
    torn: int  # bytes of a record cut short just before `offset` (dropped by readers)
    since_ns: int
    until_ns: int = 0
    serial: int = 0

    @property
    def open(self) -> bool:
        return self.until_ns == 0

    def marker_text(self) -> bytes:
        since = _clock(self.since_ns)
        if self.open:
            what = f"since {since} the disk holding this log is full; output is being lost"
        else:
            what = (f"output written between {since} and {_clock(self.until_ns)} was lost: "
                    f"the disk holding this log was full (number of lines unknown")
            what += f"; a line cut short, {self.torn} bytes, dropped)" if self.torn else ")"
        return f"[moorage] log gap: {what}\n".encode()

    def marker(self, streams: frozenset[Stream]) -> LogLine:
        """The line readers put where the output is missing (stderr unless only stdout is read)."""
        stream: Stream = "stderr" if "stderr" in streams or not streams else "stdout"
        return LogLine(stream, self.since_ns, self.marker_text())

    def to_json(self) -> dict[str, int]:
        return {"dev": self.key[0], "ino": self.key[1], "offset": self.offset,
                "torn": self.torn, "since_ns": self.since_ns, "until_ns": self.until_ns,
                "serial": self.serial}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> LogGap:
        return cls((int(data["dev"]), int(data["ino"])), int(data["offset"]), int(data["torn"]),
                   int(data["since_ns"]), int(data["until_ns"]), int(data.get("serial", 0)))


def _clock(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac // 1_000_000:03d}Z"


@attrs.define(eq=False)
class _Book:
    closed: list[LogGap] = attrs.field(factory=list)
    open: LogGap | None = None
    stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file `closed` came from
    unsaved: bool = False


@attrs.define(eq=False)
class GapRegistry:
    """Every log's gaps, open and closed, for this moord; thread-safe (readers run in
    worker threads). Lookups reread ``<log>-gaps.json`` when it changed, so a gap recorded
    by an earlier moord is known too."""

    _books: dict[Path, _Book] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def lookup(self, log_path: Path) -> list[LogGap]:
        """The gaps of a log (any file of it), sorted by file and offset. Blocking."""
        store = gaps_path(log_path)
        try:
            st = os.stat(store)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            book = self._books.get(log_path)
            known = book.stamp if book is not None else None
        if stamp != known and (book is None or not book.unsaved):
            closed = _load(store) if stamp is not None else []
            with self._lock:
                book = self._books.setdefault(log_path, _Book())
                if not book.unsaved:
                    book.closed, book.stamp = closed, stamp
        with self._lock:
            book = self._books.get(log_path)
            if book is None:
                return []
            found = list(book.closed)
            if book.open is not None:
                found.append(book.open)
        return sorted(found, key=lambda g: (g.key, g.offset, g.serial))

    def set_open(self, log_path: Path, gap: LogGap) -> None:
        with self._lock:
            self._books.setdefault(log_path, _Book()).open = gap

    def close(self, log_path: Path, gap: LogGap, existing: Sequence[FileKey]) -> None:
        """Record `gap` (closed) and forget gaps of files that no longer exist. Blocking:
        writes the record; if that fails (the disk is still tight) it is retried by
        `save_pending`, and readers of this moord know the gap meanwhile."""
        with self._lock:
            book = self._books.setdefault(log_path, _Book())
            book.open = None
            book.closed = [g for g in book.closed if g.key in existing][-(MAX_KEPT - 1):]
            book.closed.append(gap)
            book.unsaved = True
        self.save_pending(log_path)

    def unsaved(self, log_path: Path) -> bool:
        with self._lock:
            book = self._books.get(log_path)
            return book is not None and book.unsaved

    def save_pending(self, log_path: Path) -> bool:
        """Write the closed gaps of `log_path` if they are not on disk yet. Blocking."""
        with self._lock:
            book = self._books.get(log_path)
            if book is None or not book.unsaved:
                return True
            closed = list(book.closed)
        store = gaps_path(log_path)
        tmp = store.with_name(store.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump([g.to_json() for g in closed], f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, store)
            st = os.stat(store)
        except OSError as exc:
            log.warning("%s: cannot record the log's gaps yet: %s", store, exc.strerror or exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        with self._lock:
            book.unsaved = False
            book.stamp = (st.st_mtime_ns, st.st_size)
        return True

    def forget(self, log_path: Path) -> None:
        with self._lock:
            self._books.pop(log_path, None)


def _load(store: Path) -> list[LogGap]:
    try:
        data = json.loads(store.read_text())
        return [LogGap.from_json(item) for item in data]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable log gap record (%s); ignored", store, exc)
        return []


#: This moord's gaps (the disk watchers write them, every reader looks them up).
GAPS = GapRegistry()
