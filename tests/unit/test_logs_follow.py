"""Following a k8s-file while it is written, reopened (conmon) and rotated (the engine)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
import trio

import engine.logs.reader as reader_mod
from engine.kernel.inotify import IN_MODIFY, Inotify, parse_events
from engine.logs.follow import Wakeup
from engine.logs.k8sfile import LogLine, format_record
from engine.logs.reader import LogQuery, ReadStats, read_logs

T0 = 1_795_000_000_000_000_000


def rec(stream: str, content: bytes, partial: bool = False, ns: int | None = None) -> bytes:
    return format_record(stream, time.time_ns() if ns is None else ns, content, partial)  # type: ignore[arg-type]


class Sink:
    def __init__(self) -> None:
        self.lines: list[LogLine] = []
        self.changed = trio.Event()

    async def __call__(self, lines: list[LogLine]) -> None:
        assert lines
        self.lines.extend(lines)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, n: int) -> None:
        while len(self.lines) < n:
            await self.changed.wait()

    def data(self, stream: str | None = None) -> list[bytes]:
        return [ln.data for ln in self.lines if stream in (None, ln.stream)]


class Conmon:
    """Writes a log file the way conmon does, including its reopen (`.tmp` renamed over)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: BinaryIO = path.open("ab", buffering=0)

    def write(self, data: bytes) -> None:
        self.f.write(data)

    def lines(self, start: int, n: int, stream: str = "stdout") -> None:
        self.write(b"".join(rec(stream, b"%s %06d" % (stream.encode(), i)) for i in range(start, start + n)))

    def reopen(self) -> None:
        self.f.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.f = tmp.open("wb", buffering=0)
        os.rename(tmp, self.path)

    def close(self) -> None:
        self.f.close()


def expected(start: int, n: int, stream: str = "stdout") -> list[bytes]:
    return [b"%s %06d\n" % (stream.encode(), i) for i in range(start, start + n)]


async def follow(
    path: Path,
    sink: Sink,
    stopped: trio.Event,
    query: LogQuery | None = None,
    stats: ReadStats | None = None,
    is_running: Callable[[], bool] = lambda: True,
) -> None:
    await read_logs(
        path,
        query or LogQuery(),
        sink,
        follow=True,
        is_running=is_running,
        stopped=stopped.wait,
        stats=stats,
    )


async def test_follow_gets_new_lines_promptly_through_inotify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_mod, "POLL_INTERVAL", 60.0)  # only inotify can wake it
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    w.lines(0, 3)
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            await sink.wait_for(3)
            for i in range(3, 50):
                t = trio.current_time()
                w.lines(i, 1)
                await sink.wait_for(i + 1)
                assert trio.current_time() - t < 0.5
            stopped.set()
    assert sink.data() == expected(0, 50)


async def test_follow_ends_when_stopped_and_drained_and_lets_out_the_unfinished_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            w.lines(0, 10)
            w.write(rec("stderr", b"prompt: ", True))
            # Exit: everything is written before the stop is known.
            w.lines(10, 5)
            stopped.set()
    assert sink.data("stdout") == expected(0, 15)
    assert sink.lines[-1] == LogLine("stderr", sink.lines[-1].timestamp_ns, b"prompt: ", True)


async def test_not_running_means_read_and_return(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    Conmon(log).lines(0, 4)
    sink = Sink()
    with trio.fail_after(5):
        await follow(log, sink, trio.Event(), is_running=lambda: False)
    assert sink.data() == expected(0, 4)


async def test_follow_across_conmon_reopen_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    sink, stopped = Sink(), trio.Event()
    stats = ReadStats()
    n = 0
    skipped: list[int] = []  # numbers taken by the straddling lines
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped, None, stats)
            for round_ in range(5):
                for _ in range(20):
                    w.lines(n, 50)
                    n += 50
                    await trio.lowlevel.checkpoint()
                await sink.wait_for(n - len(skipped))  # the reader holds the current file
                # A line whose beginning is in the old file and its end in the new one.
                w.write(rec("stdout", b"straddle %d " % round_, True))
                w.lines(n, 3, "stderr")
                w.reopen()
                w.write(rec("stdout", b"end"))
                skipped.append(n)
                n += 1
                w.lines(n, 100)
                n += 100
                await trio.sleep(0.05)
            stopped.set()
    out = sink.data("stdout")
    straddles = [line for line in out if line.startswith(b"straddle")]
    assert straddles == [b"straddle %d end\n" % r for r in range(5)]
    numbered = [line for line in out if not line.startswith(b"straddle")]
    assert numbered == [b"stdout %06d\n" % i for i in range(n) if i not in skipped]
    assert len(sink.data("stderr")) == 15
    assert stats.reopens_followed == 5


async def test_follow_across_engine_rotation(tmp_path: Path) -> None:
    """The engine renames `<log>` away, conmon writes on into it, then reopens."""
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            w.lines(0, 100)
            await sink.wait_for(100)
            os.rename(log, tmp_path / "ctr.log.1")
            w.lines(100, 100)  # lands in ctr.log.1: still ours
            await trio.sleep(0.05)
            w.reopen()
            w.lines(200, 100)
            await sink.wait_for(300)
            # Two rotations in a row, a little apart.
            for k in range(2):
                os.rename(tmp_path / "ctr.log.1", tmp_path / f"ctr.log.{k + 2}")
                os.rename(log, tmp_path / "ctr.log.1")
                w.lines(300 + k * 100, 50)
                w.reopen()
                w.lines(350 + k * 100, 50)
                await trio.sleep(0.05)
            stopped.set()
    assert sink.data() == expected(0, 500)


async def test_a_file_rotated_in_and_out_between_two_looks_is_not_skipped(tmp_path: Path) -> None:
    """Two rotations while the follower is not looking (a busy machine, a fast writer):
    the file that came and went in between must still be read, in its place."""
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            w.lines(0, 100)
            await sink.wait_for(100)
            # no checkpoint from here on: the follower sees only the end result
            os.rename(log, tmp_path / "ctr.log.1")
            w.lines(100, 50)  # into the renamed file, still conmon's
            w.reopen()
            w.lines(150, 100)  # the file in between, rotated away before anyone looked
            os.rename(tmp_path / "ctr.log.1", tmp_path / "ctr.log.2")
            os.rename(log, tmp_path / "ctr.log.1")
            w.reopen()
            w.lines(250, 100)
            await sink.wait_for(350)
            stopped.set()
    assert sink.data() == expected(0, 350)


async def test_follow_with_tail_finishes_a_line_begun_before(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    w.lines(0, 20)
    w.write(rec("stdout", b"begun ", True) + rec("stderr", b"err"))
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped, LogQuery(tail=2))
            await sink.wait_for(2)
            assert sink.data() == [b"stdout 000019\n", b"err\n"]
            w.write(rec("stdout", b"and finished"))
            w.lines(20, 2)
            await sink.wait_for(5)
            stopped.set()
    assert sink.data()[2:] == [b"begun and finished\n", *expected(20, 2)]


async def test_follow_waits_for_the_file_to_appear(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            await trio.sleep(0.05)
            w = Conmon(log)
            w.lines(0, 5)
            await sink.wait_for(5)
            stopped.set()
    assert sink.data() == expected(0, 5)


async def test_follow_without_inotify_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Inotify, "open", classmethod(lambda cls: None))
    monkeypatch.setattr(reader_mod, "POLL_INTERVAL_NO_INOTIFY", 0.02)
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            w.lines(0, 10)
            await sink.wait_for(10)
            w.write(rec("stdout", b"x", True))
            w.reopen()
            w.write(rec("stdout", b"y"))
            w.lines(10, 10)
            await sink.wait_for(21)
            stopped.set()
    assert sink.data() == [*expected(0, 10), b"xy\n", *expected(10, 10)]


async def test_follow_with_until_stops_when_the_clock_passes_it(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    w.lines(0, 3)
    sink = Sink()
    until = time.time_ns() + 300_000_000
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, trio.Event(), LogQuery(until_ns=until))
            await sink.wait_for(3)
            w.lines(3, 2)
            await trio.sleep(0.5)
            w.lines(5, 2)  # after `until`: never shown; the follower has returned
    assert sink.data() == expected(0, 5)


async def test_truncation_in_place_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    w = Conmon(log)
    sink, stopped = Sink(), trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, log, sink, stopped)
            w.lines(0, 10)
            await sink.wait_for(10)
            os.truncate(log, 0)
            w.f.seek(0)
            w.lines(10, 2)
            await sink.wait_for(12)
            stopped.set()
    assert sink.data() == expected(0, 12)


async def test_cancelling_a_follower_closes_its_files(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    Conmon(log).lines(0, 1)
    before = len(os.listdir("/proc/self/fd"))
    sink = Sink()
    with trio.move_on_after(0.2):
        await follow(log, sink, trio.Event())
    assert sink.data() == expected(0, 1)
    assert len(os.listdir("/proc/self/fd")) == before


async def test_wakeup_and_inotify_basics(tmp_path: Path) -> None:
    wake = Wakeup()
    assert not await wake.wait(0.01)
    wake.set()
    assert await wake.wait(0.01)
    wake.clear()
    assert not await wake.wait(0.01)
    ino = Inotify.open()
    assert ino is not None, "inotify is expected on Linux"
    try:
        ino.add_watch(tmp_path, IN_MODIFY)
        (tmp_path / "f").write_bytes(b"x")
        with trio.fail_after(5):
            events = await ino.read_events()
        assert any(e.name == "f" and e.mask & IN_MODIFY for e in events)
    finally:
        ino.close()
    assert parse_events(b"") == []


async def test_an_emit_error_comes_out_as_itself(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    Conmon(log).lines(0, 1)

    async def gone(lines: list[LogLine]) -> None:
        raise trio.BrokenResourceError("client went away")

    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        await read_logs(log, LogQuery(), gone, follow=True, is_running=lambda: True)
