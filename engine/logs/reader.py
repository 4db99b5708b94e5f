"""Reading a container's log as `docker logs` does: all of it, its tail, or following it.

The files are conmon's (k8s-file, see `engine.logs.k8sfile`); this module only reads.
File reads block, so they run in worker threads, a large block per hop, and the parsing
runs there too: one hop per 256 KiB, not per line.

- **All**: read the files forward, oldest first.
- **Tail**: read backwards from the end in blocks, joining partial records in reverse,
  until the last N selected lines are known; never the whole file.
- **Follow**: after that, keep reading the newest file as it grows (inotify on its
  directory, slow polling as a safety net) until the container has stopped and the
  file is drained. When conmon reopens its log (``<log>.tmp`` renamed over ``<log>``) or
  the engine rotates it (``<log>`` renamed away), the file we hold is read to its end
  first, then the file now at ``<log>`` (a new inode) is followed from its start; the
  parser's state carries over, so no line is lost, repeated, or cut at the switch.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import attrs
import trio

from engine.kernel.inotify import IN_CREATE, IN_MOVED_TO, Inotify
from engine.logs.follow import DIR_EVENTS, Wakeup
from engine.logs.gaps import GAPS, GapRegistry, LogGap
from engine.logs.k8sfile import MAX_LINE, K8sParser, LogLine, Stream

log = logging.getLogger(__name__)

#: Bytes per read when going forward.
BLOCK = 256 * 1024
#: Bytes read per worker-thread hop going forward (several blocks, then emit).
HOP = 1024 * 1024
#: Bytes per read when going backwards for a tail.
TAIL_BLOCK = 64 * 1024
#: How often a follower looks at the file without being told to (inotify's safety net).
POLL_INTERVAL = 1.0
#: ... and when inotify is not available.
POLL_INTERVAL_NO_INOTIFY = 0.25

Emit = Callable[[list[LogLine]], Awaitable[None]]


@attrs.frozen
class LogQuery:
    """What a logs request asks for, in the engine's terms (see `engine.api.streams`)."""

    stdout: bool = True
    stderr: bool = True
    #: Only lines at or after this time (ns since the epoch); 0 = no limit.
    since_ns: int = 0
    #: Only lines at or before this time; the reader stops at the first line after it.
    until_ns: int = 0
    #: The last N selected lines (and then what follows); None = all.
    tail: int | None = None
    #: Formatting options, carried for the endpoint; the reader does not use them.
    timestamps: bool = False
    details: bool = False

    @property
    def streams(self) -> frozenset[Stream]:
        chosen: list[Stream] = []
        if self.stdout:
            chosen.append("stdout")
        if self.stderr:
            chosen.append("stderr")
        return frozenset(chosen)


@attrs.define
class ReadStats:
    """What a read cost; tests use it to prove a tail does not read the whole file."""

    bytes_read: int = 0
    files_opened: int = 0
    malformed: int = 0
    reopens_followed: int = 0


@attrs.frozen
class _Filter:
    streams: frozenset[Stream]
    since: int
    until: int

    @classmethod
    def of(cls, query: LogQuery) -> _Filter:
        return cls(query.streams, query.since_ns, query.until_ns)

    def matches(self, line: LogLine) -> bool:
        ns = line.timestamp_ns
        return line.stream in self.streams and ns >= self.since and (not self.until or ns <= self.until)

    def select(self, lines: list[LogLine]) -> tuple[list[LogLine], bool]:
        """The lines to show, and whether `until` was passed (then nothing more is shown)."""
        passed = False
        if self.until:
            until = self.until
            for i, line in enumerate(lines):
                if line.timestamp_ns > until:
                    lines, passed = lines[:i], True
                    break
        if self.since or len(self.streams) < 2:
            since, streams = self.since, self.streams
            lines = [ln for ln in lines if ln.timestamp_ns >= since and ln.stream in streams]
        return lines, passed


@attrs.define(eq=False)
class _OpenFile:
    fd: int
    key: tuple[int, int]  # (st_dev, st_ino): a file is known by its inode, not its name
    name: str
    pos: int = 0
    #: the gaps (`LogGap.serial`) of this file read past, and those whose marker was sent
    gaps_passed: set[int] = attrs.field(factory=set)
    gaps_shown: set[int] = attrs.field(factory=set)

    def close(self) -> None:
        # close(2) of a regular file does not wait on I/O; fine on the trio thread.
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_log(path: Path) -> _OpenFile | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)
    return _OpenFile(fd, (st.st_dev, st.st_ino), str(path))


def _open_all(path: Path, rotated: Sequence[Path]) -> list[_OpenFile]:
    """Open the current file, then the rotated ones newest first; return them oldest first.

    Newest first, and one inode once: if a rotation renames files while we open them,
    a file may show up under two names, but none is missed for being renamed past us.
    """
    files: list[_OpenFile] = []
    seen: set[tuple[int, int]] = set()
    for p in (path, *rotated):
        f = _open_log(p)
        if f is None:
            continue
        if f.key in seen:
            f.close()
            continue
        seen.add(f.key)
        files.append(f)
    files.reverse()
    return files


def _rotated_names(path: Path) -> list[Path]:
    """`<log>.1` … `<log>.N` as the directory lists them now, newest first."""
    prefix = path.name + "."
    indexes = []
    try:
        for name in os.listdir(path.parent):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                indexes.append(int(name[len(prefix):]))
    except FileNotFoundError:
        return []
    return [path.with_name(f"{prefix}{i}") for i in sorted(indexes)]


def _newer_chain(path: Path, current: tuple[int, int]) -> list[_OpenFile]:
    """Every file newer than the one being read (`current`), oldest first.

    Walks `<log>`, `<log>.1`, … newest first and stops at `current`: a follower that fell
    behind by two rotations (a file came and was rotated away between two looks at
    `<log>`) still finds the file in between. Rotation only moves files to higher
    numbers, so a file renamed while we walk is met again further on; one inode once,
    as in `_open_all`. If `current` is not met (it was the oldest and went), every file
    is newer.
    """
    chain: list[_OpenFile] = []
    seen: set[tuple[int, int]] = set()
    for p in (path, *_rotated_names(path)):
        f = _open_log(p)
        if f is None:
            continue
        if f.key == current or f.key in seen:
            f.close()
            if f.key == current:
                break
            continue
        seen.add(f.key)
        chain.append(f)
    chain.reverse()
    return chain


@attrs.frozen
class _Chunk:
    lines: list[LogLine]
    nbytes: int
    eof: bool
    passed_until: bool


def _read_forward(f: _OpenFile, parser: K8sParser, filt: _Filter,
                  gaps: Sequence[LogGap] = (), *, hold_at_open_gap: bool = False) -> _Chunk:
    """Read on from `f.pos` (up to `HOP` bytes), parse and filter. Runs in a worker thread.

    At a gap in the file (`engine.logs.gaps`) the torn record before it is dropped and
    the gap's marker line is put in its place. An open gap (the disk is still full) is a
    wall when following (`hold_at_open_gap`): what comes after it is glued to a torn
    record until the gap is closed and its exact end is known.
    """
    out: list[LogLine] = []
    total = 0
    ahead = [g for g in gaps if g.key == f.key and g.serial not in f.gaps_passed]
    while total < HOP:
        while ahead and ahead[0].offset <= f.pos:
            gap = ahead[0]
            if gap.open and hold_at_open_gap and gap.offset == f.pos:
                return _Chunk(out, total, True, False)
            del ahead[0]
            f.gaps_passed.add(gap.serial)
            if gap.offset == f.pos:
                parser.discard_incomplete()
            if gap.serial in f.gaps_shown:
                continue  # a tail showed it
            f.gaps_shown.add(gap.serial)
            lines, passed = filt.select([gap.marker(filt.streams)])
            out += lines
            if passed:
                return _Chunk(out, total, True, True)
        size = BLOCK if not ahead else min(BLOCK, ahead[0].offset - f.pos)
        data = os.pread(f.fd, size, f.pos)
        if not data:
            if os.fstat(f.fd).st_size < f.pos:
                # Truncated in place (copytruncate by someone else): start over.
                log.warning("%s: log file was truncated; reading it from the start", f.name)
                f.pos = 0
                parser.drop_incomplete()
                continue
            return _Chunk(out, total, True, False)
        f.pos += len(data)
        total += len(data)
        lines, passed = filt.select(parser.feed(data))
        out += lines
        if passed:
            return _Chunk(out, total, True, True)
    return _Chunk(out, total, False, False)


@attrs.define(eq=False)
class _RevLine:
    """A line being assembled backwards: its records seen so far, newest first."""

    stream: Stream
    timestamp_ns: int
    chunks: list[bytes]
    end: int  # offset of its last record, over all files: orders lines as forward reading does
    terminated: bool  # ends with an F record


@attrs.define(eq=False)
class _TailScan:
    """Find the last `want` selected lines by reading the files backwards, block by block.

    Records are joined in reverse: an F record starts a line (its end), P records before
    it belong to it, and the stream's previous F record closes it. A run of P records at
    the end of a stream is a line not finished (yet): in follow mode it is handed to the
    forward parser (`seeds`) to be finished, otherwise it is shown last, as a forward
    read shows it. Such a run is only found if it ends inside the part of the file the
    tail needs: looking further back for one would mean reading a quiet stream's whole
    history. One missed in follow mode comes out later without its beginning, as the
    separate partial messages of Docker's json-file would.
    """

    files: list[_OpenFile]  # oldest first
    filt: _Filter
    want: int
    follow: bool
    parser: K8sParser
    stats: ReadStats
    #: Where output is missing (`engine.logs.gaps`): markers go there, torn records go.
    gaps: Sequence[LogGap] = ()
    #: Selected lines found so far, by sort key: lines by the offset of their last record
    #: (the order of forward reading), then lines never finished, by time (as `finish`).
    found: list[tuple[tuple[int, int, str], LogLine]] = attrs.field(factory=list)
    seeds: list[LogLine] = attrs.field(factory=list)
    #: Offset in the newest file after its last complete record: where following resumes.
    resume_at: int = 0
    done: bool = False
    _bases: list[int] = attrs.field(factory=list)
    _idx: int = -1
    _pos: int = 0
    _carry: bytes = b""
    _at_file_end: bool = True
    _pending: dict[Stream, _RevLine] = attrs.field(factory=dict)
    #: The gaps by offset over all files, last first: consumed as the scan passes them.
    _cuts: list[tuple[int, LogGap]] = attrs.field(factory=list)
    #: The gaps passed (`LogGap.serial`): their markers are among `found` if selected.
    passed: set[int] = attrs.field(factory=set)

    def start(self) -> None:
        """Runs in a worker thread: sizes of the files, as they are now."""
        base = 0
        for f in self.files:
            self._bases.append(base)
            size = os.fstat(f.fd).st_size
            self._cuts += [(base + g.offset, g) for g in self.gaps
                           if g.key == f.key and g.offset <= size]
            base += size
        self._cuts.sort(key=lambda cut: cut[0], reverse=True)
        self._idx = len(self.files) - 1
        if self._idx < 0 or (self.want == 0 and not self.follow):
            self.done = True
            if self._idx >= 0:
                self.resume_at = os.fstat(self.files[-1].fd).st_size
            return
        self._pos = os.fstat(self.files[self._idx].fd).st_size
        self._at_file_end = True

    def step(self) -> None:
        """Read and digest one block backwards. Runs in a worker thread."""
        f = self.files[self._idx]
        start = max(0, self._pos - TAIL_BLOCK)
        data = os.pread(f.fd, self._pos - start, start) if self._pos > start else b""
        self.stats.bytes_read += len(data)
        data += self._carry
        self._carry = b""
        self._pos = start
        if self._at_file_end:
            # Bytes after the last newline are a record still being written.
            cut = data.rfind(b"\n")
            if cut < 0 and start > 0:
                self._carry = data
                return
            tail = data[cut + 1 :]
            if tail and self._idx != len(self.files) - 1:
                log.warning("%s: dropping an unfinished last record: %r", f.name, tail[:80])
            data = data[: cut + 1]
            if self._idx == len(self.files) - 1:
                self.resume_at = start + cut + 1
            self._at_file_end = False
        if start > 0:
            nl = data.find(b"\n")
            if nl < 0:
                self._carry = data
                return
            self._carry, data = data[: nl + 1], data[nl + 1 :]
        if data:
            records = data[:-1].split(b"\n")
            end = self._bases[self._idx] + start + len(self._carry) + len(data)
            for rec in reversed(records):
                end -= len(rec) + 1
                self._record_at(rec, end)
        if start == 0:
            self._idx -= 1
            if self._idx < 0:
                self._pass_gaps(-1)
                for p in list(self._pending.values()):
                    self._finish(p)
                self._pending.clear()
                self.done = True
                return
            self._pos = os.fstat(self.files[self._idx].fd).st_size
            self._at_file_end = True
        self.done = self._enough()

    def _record_at(self, rec: bytes, offset: int) -> None:
        """A record at `offset` (over all files), after the markers of gaps after it. A gap
        inside it ends a torn record, to which the record at the gap was glued: only that
        one is a record."""
        cut = self._pass_gaps(offset)
        if offset < cut <= offset + len(rec):
            rec, offset = rec[cut - offset :], cut
        self._record(rec, offset)

    def _pass_gaps(self, offset: int) -> int:
        """Add the markers of the gaps after `offset`; the offset of the last one, or -1."""
        last = -1
        while self._cuts and self._cuts[0][0] > offset:
            last, gap = self._cuts.pop(0)
            self.passed.add(gap.serial)
            marker = gap.marker(self.filt.streams)
            if self.filt.matches(marker):
                self.found.append(((0, last - 1, ""), marker))
        return last

    def _record(self, rec: bytes, offset: int) -> None:
        r = self.parser.record(rec)
        if r is None:
            return
        p = self._pending.get(r.stream)
        if not r.partial:
            if p is not None:
                self._finish(p)
            self._pending[r.stream] = _RevLine(r.stream, r.timestamp_ns, [r.content], offset, True)
        elif p is None:
            self._pending[r.stream] = _RevLine(r.stream, r.timestamp_ns, [r.content], offset, False)
        else:
            p.chunks.append(r.content)
            p.timestamp_ns = r.timestamp_ns

    def _finish(self, p: _RevLine) -> None:
        p.chunks.reverse()
        if p.terminated:
            p.chunks.append(b"\n")
        line = LogLine(p.stream, p.timestamp_ns, b"".join(p.chunks), not p.terminated)
        if not p.terminated and self.follow:
            self.seeds.append(line)
        elif self.filt.matches(line):
            key = (0, p.end, "") if p.terminated else (1, p.timestamp_ns, p.stream)
            self.found.append((key, line))
            if len(self.found) > 2 * self.want + 1024:
                # Lines below the best `want` can never make it into the tail.
                self.found.sort(key=lambda e: e[0])
                del self.found[: len(self.found) - self.want]

    def _enough(self) -> bool:
        """Whether the last `want` selected lines are all found and nothing can beat them.

        Lines not yet seen end before every line seen so far. A selected line still being
        assembled must be finished first: it may belong to the tail (and an unfinished
        last line always does, or is a seed to hand over).
        """
        chosen = [p for p in self._pending.values() if p.stream in self.filt.streams]
        if any(not p.terminated for p in chosen):
            return False
        bound = max((p.end for p in chosen), default=-1)
        above = sum(1 for key, _ in self.found if key[0] == 1 or key[1] > bound)
        return above >= self.want

    def result(self) -> list[LogLine]:
        self.found.sort(key=lambda e: e[0])
        chosen = self.found[max(0, len(self.found) - self.want) :] if self.want else []
        return [line for _, line in chosen]


async def read_logs(
    path: Path,
    query: LogQuery,
    emit: Emit,
    *,
    follow: bool = False,
    is_running: Callable[[], bool] | None = None,
    stopped: Callable[[], Awaitable[None]] | None = None,
    rotated: Sequence[Path] = (),
    stats: ReadStats | None = None,
    max_line: int = MAX_LINE,
    gaps: GapRegistry = GAPS,
) -> None:
    """Send a container's log lines to `emit`, in batches, as `docker logs` would show them.

    `path` is conmon's k8s-file; `rotated` are older files rotated away from it, newest
    first (``ctr.log.1``, ``ctr.log.2``, …). Without `follow`, what the files hold now is
    sent and the call returns. With `follow` and a running container (`is_running()`;
    None = running), new lines are sent as they are written until `stopped()` returns
    and the file is drained; `stopped` must return at once if the container has already
    stopped (None: follow until cancelled). `emit` gets non-empty lists and may block:
    that is the backpressure of a slow client. Cancel the call to stop early.
    Where output was lost (`gaps`: a full disk), a marker line stands in its place.
    """
    stats = stats if stats is not None else ReadStats()
    reader = _Reader(path, query, emit, _Filter.of(query), K8sParser(max_line=max_line), stats,
                     gaps)
    try:
        running = follow and (is_running is None or is_running())
        reader.following = running
        await reader.run(rotated, follow=running, stopped=stopped)
    finally:
        reader.close()
        stats.malformed = reader.parser.malformed


@attrs.define(eq=False)
class _Reader:
    path: Path
    query: LogQuery
    emit: Emit
    filt: _Filter
    parser: K8sParser
    stats: ReadStats
    gaps: GapRegistry
    following: bool = False
    #: Open files, oldest first; the first is being read, the others are waiting.
    files: deque[_OpenFile] = attrs.field(factory=deque)
    wake: Wakeup = attrs.field(factory=Wakeup)
    stop: trio.Event = attrs.field(factory=trio.Event)
    probing: trio.Lock = attrs.field(factory=trio.Lock)

    def close(self) -> None:
        while self.files:
            self.files.popleft().close()

    async def run(
        self,
        rotated: Sequence[Path],
        *,
        follow: bool,
        stopped: Callable[[], Awaitable[None]] | None,
    ) -> None:
        opened = await trio.to_thread.run_sync(_open_all, self.path, rotated)
        self.stats.files_opened += len(opened)
        self.files.extend(opened)
        if self.query.tail is not None:
            await self._tail(follow)
            if not follow:
                return
        elif await self._read_all_but_newest():
            return
        if not follow:
            if self.files and await self._drain(self.files[0]):
                return
            await self._flush()
            return
        await self._follow(stopped)

    async def _tail(self, follow: bool) -> None:
        """Send the tail; leave only the newest file open, positioned after it."""
        known = await trio.to_thread.run_sync(self.gaps.lookup, self.path)
        # following, an open gap is the forward reader's: it waits there for the gap's end
        shown = [g for g in known if not (follow and g.open)]
        scan = _TailScan(list(self.files), self.filt, self.query.tail or 0, follow, self.parser,
                         self.stats, shown)
        await trio.to_thread.run_sync(scan.start)
        while not scan.done:
            await trio.to_thread.run_sync(scan.step)
        lines = scan.result()
        if lines:
            await self.emit(lines)
        while len(self.files) > 1:
            self.files.popleft().close()
        if self.files:
            newest = self.files[0]
            newest.pos = scan.resume_at
            # gaps the tail has passed are not shown again when following on; one after
            # `resume_at` (a torn record at the end) still has its torn bytes dropped there
            newest.gaps_shown.update(scan.passed)
            newest.gaps_passed.update(g.serial for g in shown
                                      if g.key == newest.key and g.offset < scan.resume_at)
        for seed in scan.seeds:
            self.parser.seed(seed)

    async def _read_all_but_newest(self) -> bool:
        """Read the rotated files, oldest first; they are complete. True if `until` passed."""
        while len(self.files) > 1:
            f = self.files[0]
            if await self._drain(f):
                return True
            self.parser.drop_incomplete()
            self.files.popleft().close()
        return False

    async def _drain(self, f: _OpenFile) -> bool:
        """Read `f` to its current end, sending what is selected. True if `until` passed."""
        while True:
            chunk = await trio.to_thread.run_sync(self._read_forward, f)
            self.stats.bytes_read += chunk.nbytes
            if chunk.lines:
                await self.emit(chunk.lines)
            if chunk.passed_until:
                return True
            if chunk.eof:
                return False

    def _read_forward(self, f: _OpenFile) -> _Chunk:
        """`_read_forward` with the log's gaps as they are now. Runs in a worker thread."""
        return _read_forward(f, self.parser, self.filt, self.gaps.lookup(self.path),
                             hold_at_open_gap=self.following and not self.stop.is_set())

    async def _flush(self) -> None:
        """Send the lines that will never get their end (the container exited mid-line)."""
        lines, _ = self.filt.select(self.parser.finish())
        if lines:
            await self.emit(lines)

    async def _probe(self) -> None:
        """Hold every file newer than the one being read (after a reopen or rotation)."""
        async with self.probing:  # the follow loop and the inotify task both probe
            if not self.files:
                f = await trio.to_thread.run_sync(_open_log, self.path)
                if f is not None and not self.files:
                    self.stats.files_opened += 1
                    self.files.append(f)
                    self.wake.set()
                elif f is not None:
                    f.close()
                return
            while True:
                current = self.files[0]
                chain = await trio.to_thread.run_sync(_newer_chain, self.path, current.key)
                if self.files and self.files[0] is current:
                    break
                # the loop finished `current` meanwhile: the walk stopped at the wrong file
                for f in chain:
                    f.close()
                if not self.files:
                    return
            self._merge(current, chain)

    def _merge(self, current: _OpenFile, chain: list[_OpenFile]) -> None:
        """Hold `current`, then `chain` (newer files, oldest first), reusing open ones."""
        held = {f.key: f for f in list(self.files)[1:]}
        ordered: list[_OpenFile] = []
        for f in chain:
            known = held.pop(f.key, None)
            if known is not None:
                f.close()
                ordered.append(known)
            else:
                self.stats.files_opened += 1
                ordered.append(f)
        ordered.extend(held.values())  # held but under no name now: keep their order
        if [f.key for f in ordered] != [f.key for f in list(self.files)[1:]]:
            self.files = deque([current, *ordered])
            self.wake.set()

    async def _follow(self, stopped: Callable[[], Awaitable[None]] | None) -> None:
        inotify = Inotify.open()
        poll = POLL_INTERVAL_NO_INOTIFY
        try:
            if inotify is not None:
                try:
                    inotify.add_watch(self.path.parent, DIR_EVENTS)
                    poll = POLL_INTERVAL
                except OSError as exc:
                    log.warning("%s: cannot watch (%s); polling", self.path.parent, exc)
            try:
                async with trio.open_nursery() as nursery:
                    if inotify is not None and poll == POLL_INTERVAL:
                        nursery.start_soon(self._watch, inotify)
                    if stopped is not None:
                        nursery.start_soon(self._wait_stopped, stopped)
                    if self.filt.until:
                        nursery.start_soon(self._wait_until)
                    await self._follow_loop(poll)
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # Callers catch what `emit` raises (a client gone away), not a group of it.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
        finally:
            if inotify is not None:
                inotify.close()

    async def _follow_loop(self, poll: float) -> None:
        await self._probe()  # in case the file was replaced before the watch was set
        while True:
            self.wake.clear()
            final = self.stop.is_set()  # seen *before* reading: all output is in the files
            if self.files:
                current = self.files[0]
                if await self._drain(current):
                    return
                if len(self.files) > 1:
                    # A newer file exists, so conmon has closed this one; what it wrote
                    # before closing may have landed after our last read: read it again.
                    if await self._drain(current):
                        return
                    await self._probe()  # a file rotated in and out since the last look?
                    self.parser.drop_incomplete()
                    self.files.popleft().close()
                    self.stats.reopens_followed += 1
                    continue
            if final:
                # The container is gone; look once more for a file that replaced ours.
                held = len(self.files)
                await self._probe()
                if len(self.files) > held:
                    continue
                await self._flush()
                return
            if not await self.wake.wait(poll):
                await self._probe()

    async def _watch(self, inotify: Inotify) -> None:
        name = self.path.name
        while True:
            events = await inotify.read_events()
            self.wake.set()
            if any(e.name == name and e.mask & (IN_MOVED_TO | IN_CREATE) for e in events):
                await self._probe()

    async def _wait_stopped(self, stopped: Callable[[], Awaitable[None]]) -> None:
        await stopped()
        self.stop.set()
        self.wake.set()

    async def _wait_until(self) -> None:
        """Following with `until`: stop once the clock has passed it."""
        delay = (self.filt.until - time.time_ns()) / 1e9
        if delay > 0:
            await trio.sleep(delay)
        self.stop.set()
        self.wake.set()
