"""Noticing that conmon cannot write a container's log: the disk under it is full.

conmon 2.1.6 loses output silently on a full disk: `write_k8s_log` warns only on its
stderr (/dev/null once daemonized; and at `--log-level error` not at all), drops the
chunk and reads on, so the container never blocks. A failed `writev` may first write up
to the end of the file's last block: a record torn mid-way, to which the next successful
write is glued. The file itself cannot tell moord, so moord looks at the disk:

- every `INTERVAL`, in a worker thread: `statvfs` of the log's directory; when less than
  `LOW_SPACE` is left for unprivileged users (root, as conmon runs, may still have the
  reserved blocks), try to allocate one block in an unnamed file (`O_TMPFILE`, no name and
  no inotify event; freed on close). If root cannot get a block, neither can conmon: the
  disk is *full*, and the log's size then is where output starts going missing;
- the first full look opens a `LogGap` (readers stop there: `engine.logs.reader`); the
  first look with room again closes it, after `locate` has found the exact end of what
  was written (a torn record ends at a block boundary).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from engine.logs.gaps import FileKey, GapRegistry, LogGap
from engine.logs.k8sfile import MalformedRecord, parse_timestamp
from engine.logs.rotation import rotated_files

log = logging.getLogger(__name__)

#: How often the disk is looked at while the container runs.
INTERVAL = 1.0
#: Below this much space (for unprivileged users) a block is actually tried.
LOW_SPACE = 1024 * 1024
#: How far past the last look's size `locate` searches for the end of a torn write.
SEARCH = 256 * 1024

_RECORD_HEAD = re.compile(
    rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d std(?:out|err) [FP] ")
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)
_FULL = (errno.ENOSPC, errno.EDQUOT)

GapHook = Callable[[LogGap], None]


@attrs.frozen
class Sample:
    key: FileKey
    size: int
    full: bool


def disk_full(directory: Path) -> bool:
    """Whether root can get no block on the filesystem of `directory`. Blocking."""
    vfs = os.statvfs(directory)
    if vfs.f_bavail * vfs.f_frsize >= LOW_SPACE:
        return False
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in _FULL:
            return True
        if exc.errno in _NO_TMPFILE:
            return vfs.f_bavail == 0
        raise
    try:
        os.posix_fallocate(fd, 0, max(vfs.f_bsize, 4096))
    except OSError as exc:
        if exc.errno in _FULL:
            return True
        if exc.errno == errno.EOPNOTSUPP:
            return vfs.f_bavail == 0
        raise
    finally:
        os.close(fd)
    return False


def take_sample(log_path: Path) -> Sample | None:
    """The log file's identity and size, and whether its disk is full. Blocking."""
    try:
        st = os.stat(log_path)
    except FileNotFoundError:
        return None
    return Sample((st.st_dev, st.st_ino), st.st_size, disk_full(log_path.parent))


def _open_by_key(log_path: Path, key: FileKey) -> int | None:
    for p in (log_path, *rotated_files(log_path)):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == key:
            return fd
        os.close(fd)
    return None


def locate(log_path: Path, gap: LogGap) -> LogGap:
    """`gap` with its exact offset and torn bytes, read from the file. Blocking.

    Writing stopped at the last full look's size, or a little later if conmon filled the
    rest of the file's last block after that look. After that end comes either nothing
    yet or conmon's first record written since: a record head at a block boundary.
    """
    fd = _open_by_key(log_path, gap.key)
    if fd is None:
        return gap
    try:
        block = max(os.fstat(fd).st_blksize, 512)
        start = max(0, gap.offset - 64 * 1024)
        data = os.pread(fd, gap.offset + SEARCH - start, start)
    finally:
        os.close(fd)
    at = gap.offset - start
    if at > len(data):
        return gap
    end = _torn_end(data, at, start, block)
    line_start = data.rfind(b"\n", 0, end) + 1
    # the lost output was read after the last record written and before the next one
    since, until = gap.since_ns, gap.until_ns
    before = _stamp(data[data.rfind(b"\n", 0, max(line_start - 1, 0)) + 1 : line_start])
    after = _stamp(data[end : end + 64])
    if before is not None and before > since:
        since = before
    if after is not None and until and after < until:
        until = after
    return attrs.evolve(gap, offset=start + end, torn=end - line_start, since_ns=since,
                        until_ns=until)


def _stamp(record: bytes) -> int | None:
    """The timestamp of the record that `record` starts with, if it is one."""
    if not _RECORD_HEAD.match(record):
        return None
    try:
        return parse_timestamp(record[:35])
    except MalformedRecord:
        return None


def _torn_end(data: bytes, at: int, start: int, block: int) -> int:
    """Where writing stopped, in `data` (which begins at file offset `start`): the first
    block boundary at or after `at` where a record head follows bytes with no newline (a
    torn record, glued to the next write); else `at` if a whole record ends there or
    nothing came after; else the end of the record under `at`, so that no written byte is
    ever dropped."""
    boundary = ((start + at + block - 1) // block) * block - start
    while boundary < len(data):
        if data[boundary - 1] != 0x0A and _RECORD_HEAD.match(data, boundary):
            return boundary
        boundary += block
    if at == 0 or at == len(data) or data[at - 1] == 0x0A:
        return at
    nl = data.find(b"\n", at)
    return nl + 1 if nl >= 0 else len(data)


def _existing_keys(log_path: Path) -> list[FileKey]:
    keys = []
    for p in (log_path, *rotated_files(log_path)):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            continue
        keys.append((st.st_dev, st.st_ino))
    return keys


def close_gap(log_path: Path, gap: LogGap, until_ns: int, registry: GapRegistry) -> LogGap:
    """Find the gap's end, record it closed; the closed gap. Blocking. A file that cannot
    be read (gone with its container) leaves the gap where the last look saw it end."""
    gap = attrs.evolve(gap, until_ns=until_ns)
    try:
        closed = locate(log_path, gap)
    except OSError as exc:
        log.warning("%s: cannot read where the log's gap ends: %s", log_path, exc)
        closed = gap
    registry.close(log_path, closed, _existing_keys(log_path))
    return closed


async def watch_disk(log_path: Path, registry: GapRegistry, *, opened: GapHook,
                     closed: GapHook, interval: float = INTERVAL) -> None:
    """Record the gaps of a running container's log until cancelled (the run ends)."""
    gap: LogGap | None = None
    last_room_ns = time.time_ns()
    complained = False
    try:
        while True:
            try:
                sample = await trio.to_thread.run_sync(take_sample, log_path)
            except OSError as exc:
                if not complained:
                    log.warning("%s: cannot look at the disk under the log: %s", log_path, exc)
                complained, sample = True, None
            now = time.time_ns()
            if sample is not None and sample.full:
                if gap is None:
                    gap = LogGap(sample.key, sample.size, 0, since_ns=last_room_ns, serial=now)
                    registry.set_open(log_path, gap)
                    opened(gap)
                elif sample.key == gap.key and sample.size > gap.offset:
                    gap = attrs.evolve(gap, offset=sample.size)
                    registry.set_open(log_path, gap)
            elif sample is not None:
                if gap is not None:
                    done = await trio.to_thread.run_sync(close_gap, log_path, gap, now, registry)
                    gap = None
                    closed(done)
                elif registry.unsaved(log_path):
                    await trio.to_thread.run_sync(registry.save_pending, log_path)
                last_room_ns = now
            await trio.sleep(interval)
    finally:
        if gap is not None:
            # the run ended with the disk still full: what it wrote until now is in
            with trio.CancelScope(shield=True):
                done = await trio.to_thread.run_sync(close_gap, log_path, gap, time.time_ns(),
                                                     registry)
                closed(done)
