"""Docker stream framing and the logs endpoint's line format and query values."""

from __future__ import annotations

import calendar
import struct
import time

import pytest

from engine.api import streams
from engine.api.streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    TimestampFormatter,
    details_prefix,
    encode_log_lines,
    format_timestamp,
    frame,
    parse_tail,
    stream_media_type,
    system_error_frame,
)
from engine.errors import InvalidParameter
from engine.logs.k8sfile import LogLine
from engine.timestamps import query_time_ns

NS = 1_000_000_000


def demux(data: bytes) -> list[tuple[int, bytes]]:
    """What docker-py / stdcopy do with a multiplexed body."""
    out = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        out.append((stream, data[8 : 8 + size]))
        assert len(out[-1][1]) == size
        data = data[8 + size :]
    return out


def test_frame_header_is_stream_three_zeros_and_big_endian_size() -> None:
    assert frame(1, b"hello\n") == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
    assert frame(2, b"x" * 300)[:8] == b"\x02\x00\x00\x00\x00\x00\x01\x2c"
    assert frame(0, b"in")[0] == 0
    assert frame(1, b"") == b""
    with pytest.raises(ValueError, match="stream id"):
        frame(4, b"x")


def test_big_payloads_are_cut_into_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "MAX_FRAME_PAYLOAD", 10)
    data = bytes(range(25))
    parts = demux(frame(2, data))
    assert [len(p) for _, p in parts] == [10, 10, 5]
    assert b"".join(p for _, p in parts) == data
    assert {s for s, _ in parts} == {2}


def test_system_error_frame() -> None:
    assert demux(system_error_frame("Error grabbing logs: boom")) == [(3, b"Error grabbing logs: boom\n")]


def test_media_types() -> None:
    assert MULTIPLEXED_STREAM == "application/vnd.docker.multiplexed-stream"
    assert RAW_STREAM == "application/vnd.docker.raw-stream"
    assert stream_media_type(tty=False, api_version="1.50") == MULTIPLEXED_STREAM
    assert stream_media_type(tty=False, api_version="1.42") == MULTIPLEXED_STREAM
    assert stream_media_type(tty=False, api_version="1.41") == RAW_STREAM
    assert stream_media_type(tty=True, api_version="1.50") == RAW_STREAM


def test_timestamp_format_is_fixed_width_utc_nanoseconds() -> None:
    ns = calendar.timegm((2026, 1, 2, 15, 4, 5, 0, 0, 0)) * NS
    assert format_timestamp(ns) == "2026-01-02T15:04:05.000000000Z"
    assert format_timestamp(ns + 120) == "2026-01-02T15:04:05.000000120Z"
    stamp = TimestampFormatter()
    assert stamp(ns + 999_999_999) == b"2026-01-02T15:04:05.999999999Z "
    assert stamp(ns + NS) == b"2026-01-02T15:04:06.000000000Z "


LINES = [
    LogLine("stdout", 5 * NS, b"out\n"),
    LogLine("stderr", 5 * NS + 1, b"err\n"),
    LogLine("stdout", 6 * NS, b"no newline", True),
]


def test_log_lines_multiplexed_one_frame_each() -> None:
    assert demux(encode_log_lines(LINES, multiplexed=True)) == [
        (1, b"out\n"),
        (2, b"err\n"),
        (1, b"no newline"),
    ]


def test_log_lines_raw_for_tty() -> None:
    assert encode_log_lines(LINES, multiplexed=False) == b"out\nerr\nno newline"


def test_log_lines_with_timestamps_and_details() -> None:
    got = demux(encode_log_lines(LINES[:2], multiplexed=True, timestamps=True, details=True))
    assert got == [
        (1, b"1970-01-01T00:00:05.000000000Z  out\n"),
        (2, b"1970-01-01T00:00:05.000000001Z  err\n"),
    ]
    with_attrs = encode_log_lines(LINES[:1], multiplexed=False, details=True, attrs={"b": "x y", "a": "1,2"})
    assert with_attrs == b"a=1%2C2,b=x+y out\n"


def test_a_formatter_without_timestamps_adds_nothing() -> None:
    body = encode_log_lines(LINES[:1], multiplexed=False, timestamps=False, stamp=TimestampFormatter())
    assert body == b"out\n"


def test_details_prefix_is_a_lone_space_without_attributes() -> None:
    # dockerd writes attrs then a space, so no attributes still means one space.
    assert details_prefix() == b" "
    assert details_prefix({}) == b" "
    assert details_prefix({"k": "v"}) == b"k=v "


def test_encoding_many_lines_in_one_batch() -> None:
    lines = [LogLine("stdout", i, b"%070d\n" % i) for i in range(100_000)]
    body = encode_log_lines(lines, multiplexed=True, timestamps=True)
    assert len(body) == 100_000 * (8 + 31 + 71)
    assert demux(body[-(8 + 31 + 71) :]) == [(1, b"1970-01-01T00:00:00.000099999Z " + b"%070d\n" % 99_999)]


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        (None, 0),
        ("", 0),
        ("0", 0),
        ("1700000000", 1_700_000_000 * NS),
        ("1700000000.000000001", 1_700_000_000 * NS + 1),
        ("1700000000.5", 1_700_000_000 * NS + 500_000_000),
        ("1700000000.1234567891", 1_700_000_000 * NS + 123_456_789),
        ("-1.5", -NS + 500_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000 * NS),
        ("2023-11-14T22:13:20.000000042Z", 1_700_000_000 * NS + 42),
        ("2023-11-14T22:13:20.5z", 1_700_000_000 * NS + 500_000_000),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000 * NS),
        ("2023-11-14T16:43:20.25-05:30", 1_700_000_000 * NS + 250_000_000),
    ],
)
def test_parse_docker_time(value: str | None, ns: int) -> None:
    assert query_time_ns(value) == ns


def test_parse_docker_time_without_offset_is_local_time() -> None:
    expected = int(time.mktime((2023, 11, 14, 22, 13, 20, 0, 0, -1))) * NS
    assert query_time_ns("2023-11-14T22:13:20") == expected


@pytest.mark.parametrize(
    "value", ["yesterday", "10m", "1.2.3", "2023-13-01T00:00:00Z", "2023-11-14T22:13:20+2"]
)
def test_parse_docker_time_refuses_garbage(value: str) -> None:
    with pytest.raises(InvalidParameter, match="since"):
        query_time_ns(value, name="since")


@pytest.mark.parametrize(
    ("value", "n"),
    [(None, None), ("all", None), ("", None), ("-1", None), ("0", 0), ("10", 10), (" 7 ", 7)],
)
def test_parse_tail(value: str | None, n: int | None) -> None:
    assert parse_tail(value) == n
