"""Gaps in a log (output conmon could not write, a full disk): where they end, and what
readers show there. The files are made here as conmon leaves them: a record torn at a
block boundary, and the next record glued to it."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import trio

from engine.logs.diskwatch import disk_full, locate
from engine.logs.gaps import GapRegistry, LogGap, gaps_path
from engine.logs.k8sfile import LogLine, format_record
from engine.logs.reader import LogQuery, read_logs

T0 = 1_795_000_000_000_000_000
S = 1_000_000_000
BLOCK = 4096


def line(n: int) -> bytes:
    return format_record("stdout", T0 + n * S, b"line %d" % n, False)


def key_of(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def torn_log(path: Path, *, after: range) -> tuple[int, int, int]:
    """Lines 0.. up to just below a block boundary, a record torn at the boundary, then
    the lines of `after` glued on. Returns (offset of the boundary, torn bytes, last
    whole line before the tear)."""
    data, n = b"", 0
    while len(data) + len(line(n)) < BLOCK:
        data += line(n)
        n += 1
    torn = BLOCK - len(data)
    data += line(n)[:torn]  # the write that failed half-way (line n is lost)
    data += b"".join(line(i) for i in after)
    path.write_bytes(data)
    assert os.stat(path).st_blksize == BLOCK or BLOCK % os.stat(path).st_blksize == 0
    return BLOCK, torn, n - 1


def append(path: Path, data: bytes) -> None:
    """As conmon writes: O_APPEND, the same file."""
    with open(path, "ab") as f:
        f.write(data)


async def read(path: Path, registry: GapRegistry, **query: object) -> list[LogLine]:
    lines: list[LogLine] = []

    async def emit(batch: list[LogLine]) -> None:
        lines.extend(batch)

    await read_logs(path, LogQuery(**query), emit, gaps=registry)  # type: ignore[arg-type]
    return lines


def texts(lines: list[LogLine]) -> list[str]:
    return [ln.data.decode().strip() for ln in lines]


def test_locate_finds_the_torn_record_and_the_glued_one(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    boundary, torn, last = torn_log(log, after=range(500, 510))
    # the last look saw the file still short of the boundary (conmon filled the block later)
    seen = LogGap(key_of(log), boundary - torn - 2 * len(line(1)), 0, T0, T0 + 10_000 * S)
    found = locate(log, seen)
    assert (found.offset, found.torn) == (boundary, torn)
    # the span is narrowed to the records around the hole: the last one written before it
    # and the first one after
    assert (found.since_ns, found.until_ns) == (T0 + last * S, T0 + 500 * S)
    # the last look saw the torn end itself
    assert locate(log, LogGap(key_of(log), boundary, 0, T0)).offset == boundary


def test_locate_keeps_a_clean_end(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(b"".join(line(i) for i in range(10)))
    end = log.stat().st_size
    log.write_bytes(log.read_bytes() + b"".join(line(i) for i in range(50, 60)))
    found = locate(log, LogGap(key_of(log), end, 0, T0))
    assert (found.offset, found.torn) == (end, 0)


def test_locate_never_cuts_a_written_record(tmp_path: Path) -> None:
    """No tear to be found: the gap moves to the end of the record it fell in."""
    log = tmp_path / "ctr.log"
    log.write_bytes(b"".join(line(i) for i in range(10)))
    middle = len(line(0)) + 5
    found = locate(log, LogGap(key_of(log), middle, 0, T0))
    assert (found.offset, found.torn) == (2 * len(line(0)), 0)


async def test_readers_show_a_marker_where_output_is_missing(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    boundary, torn, last = torn_log(log, after=range(500, 510))
    registry = GapRegistry()
    gap = LogGap(key_of(log), boundary, torn, T0 + last * S, T0 + 600 * S, serial=1)
    registry.close(log, gap, [gap.key])

    lines = await read(log, registry)
    shown = texts(lines)
    expected = [f"line {i}" for i in range(last + 1)]
    assert shown[: last + 1] == expected
    assert shown[last + 1].startswith("[moorage] log gap: output written between")
    assert f"a line cut short, {torn} bytes, dropped" in shown[last + 1]
    assert lines[last + 1].stream == "stderr"
    assert shown[last + 2 :] == [f"line {i}" for i in range(500, 510)]

    # the tail of the same: the same lines, the marker among them
    for n in (3, 11, 12, len(shown)):
        assert texts(await read(log, registry, tail=n)) == shown[-n:]
    # only stdout wanted: the marker comes on stdout
    assert texts(await read(log, registry, stderr=False)) == shown

    # a later moord knows the gap from the file beside the log
    assert gaps_path(log).exists()
    assert texts(await read(log, GapRegistry())) == shown


async def test_an_open_gap_says_output_is_being_lost(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(b"".join(line(i) for i in range(5)) + line(5)[:20])
    registry = GapRegistry()
    registry.set_open(log, LogGap(key_of(log), log.stat().st_size, 0, T0 + 4 * S, serial=1))
    shown = texts(await read(log, registry))
    assert shown[:5] == [f"line {i}" for i in range(5)]
    assert "the disk holding this log is full; output is being lost" in shown[5]
    assert len(shown) == 6
    assert not gaps_path(log).exists()  # nothing is written while the disk is full
    tail = texts(await read(log, registry, tail=2))
    assert tail == shown[-2:]


def test_a_disk_with_room_is_not_full(tmp_path: Path) -> None:
    assert disk_full(tmp_path) is False


async def test_a_tail_then_follow_shows_a_gap_once_and_unglued(tmp_path: Path) -> None:
    """The gap is at the end of the file, after a torn record: the tail shows its marker;
    following on, the torn bytes are still dropped and the record glued on comes whole."""
    log = tmp_path / "ctr.log"
    log.write_bytes(b"".join(line(i) for i in range(5)) + line(5)[:20])
    registry = GapRegistry()
    gap = LogGap(key_of(log), log.stat().st_size, 20, T0 + 4 * S, T0 + 500 * S, serial=1)
    registry.close(log, gap, [gap.key])
    lines: list[LogLine] = []
    stop, tail_sent = trio.Event(), trio.Event()

    async def emit(batch: list[LogLine]) -> None:
        lines.extend(batch)
        if len(lines) >= 2:
            tail_sent.set()

    async def stopped() -> None:
        await stop.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(read_logs, log, LogQuery(tail=2), emit, follow=True,
                                   is_running=lambda: True, stopped=stopped, gaps=registry))
        with trio.fail_after(10):
            await tail_sent.wait()
        await trio.to_thread.run_sync(append, log, b"".join(line(i) for i in range(500, 503)))
        stop.set()
    shown = texts(lines)
    assert shown[0] == "line 4"
    assert shown[1].startswith("[moorage] log gap:")
    assert shown[2:] == ["line 500", "line 501", "line 502"]
