"""conmon's k8s-file records: parsing, partial-line joining, bad input."""

from __future__ import annotations

import calendar
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.logs.k8sfile import (
    K8sParser,
    LogLine,
    MalformedRecord,
    format_record,
    parse_record,
    parse_timestamp,
)

T0 = 1_795_000_000_123_456_789  # an instant with all nine fractional digits in use


def rec(stream: str, content: bytes, partial: bool = False, ns: int = T0) -> bytes:
    return format_record(stream, ns, content, partial)  # type: ignore[arg-type]


def test_timestamp_keeps_nanoseconds_and_offsets() -> None:
    assert parse_timestamp(b"2026-11-24T22:48:28.823818517+00:00") == (
        calendar.timegm((2026, 11, 24, 22, 48, 28, 0, 0, 0)) * 10**9 + 823818517
    )
    utc = parse_timestamp(b"2026-08-20T10:00:00.000000001+00:00")
    assert parse_timestamp(b"2026-08-20T12:00:00.000000001+02:00") == utc
    assert parse_timestamp(b"2026-08-20T04:30:00.000000001-05:30") == utc


@pytest.mark.parametrize(
    "stamp",
    [
        b"2026-11-24T22:48:28.82381851+00:00",  # 8 digits
        b"2026-11-24 22:48:28.823818517+00:00",
        b"2026-13-24T22:48:28.823818517+00:00",
        b"2026-11-24T22:48:28.823818517Z00:00",
        b"2026-11-24T22:48:28.8238185x7+00:00",
    ],
)
def test_bad_timestamps_are_refused(stamp: bytes) -> None:
    with pytest.raises(MalformedRecord):
        parse_timestamp(stamp)


def test_parse_record_fields() -> None:
    r = parse_record(b"2026-11-24T22:48:28.823818517+00:00 stderr P half a line")
    assert (r.stream, r.content, r.partial) == ("stderr", b"half a line", True)
    empty = parse_record(b"2026-11-24T22:48:28.823818517+00:00 stdout F ")
    assert (empty.content, empty.partial) == (b"", False)
    bare = parse_record(b"2026-11-24T22:48:28.823818517+00:00 stdout F")
    assert bare.content == b""


def test_full_records_become_lines_with_newline() -> None:
    p = K8sParser()
    lines = p.feed(rec("stdout", b"hello") + rec("stderr", b"oops") + rec("stdout", b""))
    assert lines == [
        LogLine("stdout", T0, b"hello\n"),
        LogLine("stderr", T0, b"oops\n"),
        LogLine("stdout", T0, b"\n"),
    ]


def test_content_with_spaces_and_odd_bytes_is_kept() -> None:
    content = b"  a  b \t\x00\xff\r  "
    assert K8sParser().feed(rec("stdout", content)) == [LogLine("stdout", T0, content + b"\n")]


def test_partials_join_per_stream_and_take_the_first_timestamp() -> None:
    data = (
        rec("stdout", b"one ", True, T0)
        + rec("stderr", b"err line", False, T0 + 1)
        + rec("stdout", b"two ", True, T0 + 2)
        + rec("stderr", b"err ", True, T0 + 3)
        + rec("stdout", b"three", False, T0 + 4)
        + rec("stderr", b"end", False, T0 + 5)
    )
    assert K8sParser().feed(data) == [
        LogLine("stderr", T0 + 1, b"err line\n"),
        LogLine("stdout", T0, b"one two three\n"),
        LogLine("stderr", T0 + 3, b"err end\n"),
    ]


def test_partial_tail_is_let_out_by_finish_without_newline() -> None:
    p = K8sParser()
    assert p.feed(rec("stdout", b"no newline ", True) + rec("stdout", b"at exit", True)) == []
    assert p.finish() == [LogLine("stdout", T0, b"no newline at exit", True)]
    assert p.finish() == []


def test_megabyte_line_from_many_partials_comes_out_whole() -> None:
    chunk = bytes(range(32, 127)) * 86  # 8170 bytes, like conmon's 8 KiB reads
    pieces = [chunk] * 130
    data = b"".join(rec("stdout", c, True, T0 + i) for i, c in enumerate(pieces))
    data += rec("stderr", b"interleaved") + rec("stdout", b"tail", False, T0 + 999)
    lines = K8sParser().feed(data)
    assert lines[0] == LogLine("stderr", T0, b"interleaved\n")
    big = lines[1]
    assert big.data == chunk * 130 + b"tail\n"
    assert len(big.data) > 1024 * 1024
    assert big.timestamp_ns == T0
    assert not big.partial


def test_incomplete_record_is_held_until_completed() -> None:
    whole = rec("stdout", b"first") + rec("stdout", b"second")
    p = K8sParser()
    cut = len(whole) - 7
    assert p.feed(whole[:cut]) == [LogLine("stdout", T0, b"first\n")]
    assert p.has_incomplete_record
    assert p.feed(whole[cut:]) == [LogLine("stdout", T0, b"second\n")]
    assert not p.has_incomplete_record


def test_byte_at_a_time_equals_all_at_once() -> None:
    data = rec("stdout", b"a", True) + rec("stderr", b"b") + rec("stdout", b"c") * 3
    p = K8sParser()
    one_by_one = [line for i in range(len(data)) for line in p.feed(data[i : i + 1])]
    assert one_by_one == K8sParser().feed(data)


def test_garbage_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    data = (
        rec("stdout", b"before")
        + b"this is not a record\n"
        + b"2026-11-24T22:48:28.823818517+00:00 stdin F nope\n"
        + b"2026-11-24T22:48:28.823818517+00:00 stdout X nope\n"
        + b"\n"
        + rec("stdout", b"after")
    )
    p = K8sParser()
    with caplog.at_level(logging.WARNING, logger="engine.logs.k8sfile"):
        lines = p.feed(data)
    assert [ln.data for ln in lines] == [b"before\n", b"after\n"]
    assert p.malformed == 4
    assert "malformed" in caplog.text


def test_other_layouts_of_valid_records_still_parse() -> None:
    # A five-digit year does not fit the fast path's fixed offsets.
    line = b"12026-01-01T00:00:00.000000000+00:00 stdout F far future\n"
    p = K8sParser()
    with pytest.raises(MalformedRecord):
        parse_record(line[:-1])  # and the timestamp itself is refused...
    assert p.feed(line) == []  # ...so the record is skipped, not misread
    assert p.malformed == 1


def test_drop_incomplete_forgets_a_torn_record() -> None:
    p = K8sParser()
    p.feed(rec("stdout", b"whole") + b"2026-11-24T22:48:28.8238")
    assert p.drop_incomplete() == b"2026-11-24T22:48:28.8238"
    assert p.feed(rec("stdout", b"next")) == [LogLine("stdout", T0, b"next\n")]


def test_overlong_line_is_let_out_in_pieces() -> None:
    p = K8sParser(max_line=10)
    lines = p.feed(rec("stdout", b"123456", True) + rec("stdout", b"789012", True))
    assert lines == [LogLine("stdout", T0, b"123456789012", True)]
    assert p.feed(rec("stdout", b"end")) == [LogLine("stdout", T0, b"end\n")]


def test_seed_continues_a_line_found_elsewhere() -> None:
    p = K8sParser()
    p.seed(LogLine("stdout", T0, b"begun ", True))
    assert p.feed(rec("stdout", b"done", False, T0 + 5)) == [LogLine("stdout", T0, b"begun done\n")]


def test_format_record_round_trips() -> None:
    line = format_record("stderr", T0, b"x y", True)
    assert line.endswith(b" stderr P x y\n")
    r = parse_record(line[:-1])
    assert (r.stream, r.timestamp_ns, r.content, r.partial) == ("stderr", T0, b"x y", True)


_pieces = st.lists(
    st.tuples(
        st.sampled_from(["stdout", "stderr"]),
        st.binary(max_size=20).filter(lambda b: b"\n" not in b),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(pieces=_pieces, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_any_chunking_gives_the_same_lines(pieces: list[tuple[str, bytes, bool]], cuts: list[int]) -> None:
    data = b"".join(rec(s, c, partial, T0 + i) for i, (s, c, partial) in enumerate(pieces))
    whole = K8sParser()
    expected = whole.feed(data) + whole.finish()
    p = K8sParser()
    got: list[LogLine] = []
    prev = 0
    for cut in sorted(min(c, len(data)) for c in cuts):
        got += p.feed(data[prev:cut])
        prev = cut
    got += p.feed(data[prev:]) + p.finish()
    assert got == expected
    # And the joined text per stream is exactly what was written.
    for stream in ("stdout", "stderr"):
        written = b"".join(c + (b"" if partial else b"\n") for s, c, partial in pieces if s == stream)
        assert b"".join(ln.data for ln in got if ln.stream == stream) == written
