"""Reading k8s-file logs: all, since/until, tail (reading only the end), rotated files."""

from __future__ import annotations

import random
from pathlib import Path

import attrs
import pytest

import engine.logs.reader as reader_mod
from engine.logs.k8sfile import LogLine, format_record
from engine.logs.reader import LogQuery, ReadStats, read_logs

T0 = 1_795_000_000_000_000_000
S = 1_000_000_000


def rec(stream: str, content: bytes, partial: bool = False, ns: int = T0) -> bytes:
    return format_record(stream, ns, content, partial)  # type: ignore[arg-type]


class Sink:
    """An `emit` that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[LogLine] = []
        self.batches = 0

    async def __call__(self, lines: list[LogLine]) -> None:
        assert lines, "emit must not be called with nothing"
        self.batches += 1
        self.lines.extend(lines)

    def text(self, stream: str | None = None) -> bytes:
        return b"".join(ln.data for ln in self.lines if stream in (None, ln.stream))


async def collect(path: Path, query: LogQuery, **kw: object) -> list[LogLine]:
    sink = Sink()
    await read_logs(path, query, sink, **kw)  # type: ignore[arg-type]
    return sink.lines


def numbered(n: int, stream: str = "stdout", start: int = 0, step_ns: int = S) -> bytes:
    return b"".join(
        rec(stream, b"%s %06d" % (stream.encode(), i), False, T0 + i * step_ns)
        for i in range(start, start + n)
    )


async def test_reads_everything_in_order(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(
        rec("stdout", b"a") + rec("stderr", b"b ", True) + rec("stderr", b"c") + rec("stdout", b"")
    )
    lines = await collect(log, LogQuery())
    assert [(ln.stream, ln.data) for ln in lines] == [
        ("stdout", b"a\n"),
        ("stderr", b"b c\n"),
        ("stdout", b"\n"),
    ]


async def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert await collect(tmp_path / "nope.log", LogQuery()) == []
    assert await collect(tmp_path / "nope.log", LogQuery(tail=3)) == []


async def test_stream_selection(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(numbered(3, "stdout") + numbered(2, "stderr"))
    out = await collect(log, LogQuery(stderr=False))
    err = await collect(log, LogQuery(stdout=False))
    assert [ln.stream for ln in out] == ["stdout"] * 3
    assert [ln.data for ln in err] == [b"stderr 000000\n", b"stderr 000001\n"]


async def test_since_is_inclusive_and_until_stops_at_the_first_line_after(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(numbered(10) + rec("stdout", b"clock went back", False, T0 + 2 * S))
    lines = await collect(log, LogQuery(since_ns=T0 + 3 * S, until_ns=T0 + 6 * S))
    assert [ln.data for ln in lines] == [b"stdout %06d\n" % i for i in (3, 4, 5, 6)]
    # `until` ends the read: the late line with an early stamp after it is not shown.
    lines = await collect(log, LogQuery(until_ns=T0 + 8 * S))
    assert len(lines) == 9


async def test_nanoseconds_matter_for_since(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(numbered(3, step_ns=1))
    lines = await collect(log, LogQuery(since_ns=T0 + 1))
    assert [ln.timestamp_ns for ln in lines] == [T0 + 1, T0 + 2]


async def test_unfinished_last_line_is_shown_without_newline(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(rec("stdout", b"done") + rec("stdout", b"no newline", True))
    lines = await collect(log, LogQuery())
    assert lines[-1] == LogLine("stdout", T0, b"no newline", True)
    assert (await collect(log, LogQuery(tail=1))) == [lines[-1]]


async def test_record_being_written_is_not_shown(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(rec("stdout", b"whole") + rec("stdout", b"being written")[:-9])
    assert [ln.data for ln in await collect(log, LogQuery())] == [b"whole\n"]
    assert [ln.data for ln in await collect(log, LogQuery(tail=5))] == [b"whole\n"]


async def test_garbage_lines_are_skipped(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(rec("stdout", b"a") + b"garbage here\n" + rec("stdout", b"b"))
    stats = ReadStats()
    lines = await collect(log, LogQuery(), stats=stats)
    assert [ln.data for ln in lines] == [b"a\n", b"b\n"]
    assert stats.malformed == 1
    assert [ln.data for ln in await collect(log, LogQuery(tail=5))] == [b"a\n", b"b\n"]


async def test_tail_counts_joined_lines_of_selected_streams(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    chunk = b"x" * 8000
    data = numbered(5, "stdout")
    for i in range(140):  # a 1.1 MB line, with stderr lines written in between
        data += rec("stdout", chunk, True, T0 + 100 * S + i)
        if i % 20 == 0:
            data += rec("stderr", b"err %d" % i, False, T0 + 100 * S + i)
    data += rec("stdout", b"END", False, T0 + 200 * S)
    log.write_bytes(data)
    lines = await collect(log, LogQuery(tail=2, stderr=False))
    assert [ln.data[:13] for ln in lines] == [b"stdout 000004", b"x" * 13]
    assert lines[1].data == chunk * 140 + b"END\n"
    assert lines[1].timestamp_ns == T0 + 100 * S  # when the line began
    both = await collect(log, LogQuery(tail=3))
    assert [ln.data[:7] for ln in both] == [b"err 100", b"err 120", b"x" * 7]
    assert await collect(log, LogQuery(tail=0)) == []
    everything = await collect(log, LogQuery())
    assert await collect(log, LogQuery(tail=1000)) == everything


async def test_tail_with_since(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    log.write_bytes(numbered(10))
    lines = await collect(log, LogQuery(tail=5, since_ns=T0 + 7 * S))
    assert [ln.data for ln in lines] == [b"stdout %06d\n" % i for i in (7, 8, 9)]
    lines = await collect(log, LogQuery(tail=2, until_ns=T0 + 4 * S))
    assert [ln.data for ln in lines] == [b"stdout 000003\n", b"stdout 000004\n"]


def _big_log(path: Path, megabytes: int) -> int:
    block = numbered(14_000)  # about 1 MiB of records
    with path.open("wb") as f:
        for _ in range(megabytes):
            f.write(block)
    return path.stat().st_size


async def test_tail_of_a_big_file_reads_only_its_end(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    size = _big_log(log, 64)
    stats = ReadStats()
    lines = await collect(log, LogQuery(tail=10), stats=stats)
    assert [ln.data for ln in lines] == [b"stdout %06d\n" % i for i in range(13_990, 14_000)]
    assert stats.bytes_read <= reader_mod.TAIL_BLOCK, (stats.bytes_read, size)

    stats = ReadStats()
    lines = await collect(log, LogQuery(tail=5000), stats=stats)
    assert len(lines) == 5000
    assert stats.bytes_read <= 5000 * len(rec("stdout", b"stdout 000000")) + reader_mod.TAIL_BLOCK

    # A megabyte-long last line is read back in full, and not much more.
    with log.open("ab") as f:
        for i in range(128):
            f.write(rec("stdout", b"y" * 8192, True, T0 + i))
        f.write(rec("stdout", b"", False, T0 + 999))
    stats = ReadStats()
    lines = await collect(log, LogQuery(tail=1), stats=stats)
    assert lines[0].data == b"y" * 8192 * 128 + b"\n"
    assert stats.bytes_read < 1024 * 1024 + 2 * reader_mod.TAIL_BLOCK + 128 * 64


async def test_rotated_files_are_read_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "ctr.log"
    (tmp_path / "ctr.log.2").write_bytes(numbered(3) + rec("stdout", b"straddles ", True))
    (tmp_path / "ctr.log.1").write_bytes(rec("stdout", b"two files") + numbered(3, start=3))
    log.write_bytes(numbered(3, start=6))
    rotated = [tmp_path / "ctr.log.1", tmp_path / "ctr.log.2", tmp_path / "ctr.log.3"]
    lines = await collect(log, LogQuery(), rotated=rotated)
    data = [ln.data for ln in lines]
    assert data[3] == b"straddles two files\n"
    assert data[:3] + data[4:] == [b"stdout %06d\n" % i for i in range(9)]
    assert await collect(log, LogQuery(tail=7), rotated=rotated) == lines[-7:]
    # The same file under two names (a rotation while we list them) is read once.
    again = await collect(log, LogQuery(), rotated=[log, *rotated])
    assert again == lines


# -- tail equals the end of a full read, whatever the content and block size ------------


@pytest.mark.parametrize("seed", range(8))
async def test_tail_is_the_end_of_the_full_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random logs (seeded): interleaved streams, partial runs, rotated halves, tiny blocks.

    The tail must be the end of what a full read gives, in the same order.
    """
    rnd = random.Random(seed)
    log, older = tmp_path / "ctr.log", tmp_path / "ctr.log.1"
    for _ in range(40):
        raw = [
            rec(
                rnd.choice(["stdout", "stderr"]),
                bytes(rnd.choices(b"ab ", k=rnd.randint(0, 20))),
                rnd.random() < 0.5,
                T0 + i * S,
            )
            for i in range(rnd.randint(0, 40))
        ]
        split = rnd.randint(0, len(raw))
        older.write_bytes(b"".join(raw[:split]))
        log.write_bytes(b"".join(raw[split:]))
        streams = rnd.choice([(True, True), (True, False), (False, True)])
        since = T0 + rnd.randint(0, 40) * S if rnd.random() < 0.3 else 0
        query = LogQuery(stdout=streams[0], stderr=streams[1], since_ns=since)
        monkeypatch.setattr(reader_mod, "TAIL_BLOCK", rnd.randint(1, 300))
        full = await collect(log, query, rotated=[older])
        whole = [ln for ln in full if not ln.partial]
        unfinished = [ln for ln in full if ln.partial]  # last, by time, as forward reading ends
        assert full == whole + unfinished
        for tail in (0, 1, 2, 3, rnd.randint(4, 50)):
            got = await collect(log, attrs.evolve(query, tail=tail), rotated=[older])
            # A line left unfinished long before the tail's lines is not searched for (that
            # could mean reading the whole file); any other difference is a bug.
            allowed = [
                (whole + [u for i, u in enumerate(unfinished) if keep >> i & 1])[-tail:] if tail else []
                for keep in range(1 << len(unfinished))
            ]
            assert got in allowed, (seed, tail)


async def test_tail_waits_for_a_longer_line_still_being_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Going backwards, stderr's lines are complete before stdout's line (which ends
    # last) is: the tail must not settle for them.
    monkeypatch.setattr(reader_mod, "TAIL_BLOCK", 50)
    log = tmp_path / "ctr.log"
    log.write_bytes(
        rec("stdout", b"o1", True, T0)
        + rec("stderr", b"e1", False, T0 + 1)
        + rec("stderr", b"e2", False, T0 + 2)
        + rec("stdout", b"o2", False, T0 + 3)
    )
    assert [ln.data for ln in await collect(log, LogQuery(tail=1))] == [b"o1o2\n"]
    assert [ln.data for ln in await collect(log, LogQuery(tail=2))] == [b"e2\n", b"o1o2\n"]
