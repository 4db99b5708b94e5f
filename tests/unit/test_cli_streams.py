"""The chunked decoder, the 8-byte frame demultiplexer and newline-delimited JSON."""

from __future__ import annotations

import io

import pytest

from engine.cli.attach import Outputs, pump
from engine.cli.streams import (
    ChunkedDecoder,
    FrameDemuxer,
    FramingError,
    encode_chunked,
    encode_frame,
    json_lines,
)


def _feed_all(decoder: ChunkedDecoder, data: bytes, step: int) -> bytes:
    out = b""
    for i in range(0, len(data), step):
        out += b"".join(decoder.feed(data[i:i + step]))
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_chunked_any_split(step: int) -> None:
    body = encode_chunked([b"hello ", b"", b"world\r\n", b"x" * 300])
    decoder = ChunkedDecoder()
    assert _feed_all(decoder, body, step) == b"hello world\r\n" + b"x" * 300
    assert decoder.done


def test_chunked_extensions_and_trailers() -> None:
    decoder = ChunkedDecoder()
    data = b"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"
    assert b"".join(decoder.feed(data)) == b"hello0123456789"
    assert decoder.done


def test_chunked_hands_out_partial_chunks() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"f\r\nfirst") == [b"first"]
    assert decoder.feed(b"-part-rest\r\n") == [b"-part-rest"]
    assert not decoder.done


def test_chunked_rejects_garbage() -> None:
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(b"zz\r\n")
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(b"2\r\nabXY")


def test_demux_frames_split_anywhere() -> None:
    stream = (encode_frame(1, b"out") + encode_frame(2, b"err\n") + encode_frame(1, b"")
              + encode_frame(1, b"more"))
    for step in (1, 3, 8, 9, len(stream)):
        demux = FrameDemuxer()
        got: list[tuple[int, bytes]] = []
        for i in range(0, len(stream), step):
            got.extend(demux.feed(stream[i:i + step]))
        merged: dict[int, bytes] = {}
        for sid, payload in got:
            merged[sid] = merged.get(sid, b"") + payload
        assert merged == {1: b"outmore", 2: b"err\n"}
        assert demux.idle


def test_demux_reports_partial_payloads_promptly() -> None:
    demux = FrameDemuxer()
    assert demux.feed(encode_frame(2, b"abcdef")[:10]) == [(2, b"ab")]
    assert not demux.idle
    assert demux.feed(b"cdef") == [(2, b"cdef")]


def test_demux_rejects_unknown_stream() -> None:
    with pytest.raises(FramingError):
        FrameDemuxer().feed(b"\x07\x00\x00\x00\x00\x00\x00\x01x")


def test_pump_routes_streams_and_stops_at_system_error() -> None:
    outputs = Outputs(io.BytesIO(), io.BytesIO())
    chunks = [encode_frame(1, b"a") + encode_frame(2, b"b"),
              encode_frame(3, b"cannot exec\n"), encode_frame(1, b"never")]
    assert pump(chunks, tty=False, outputs=outputs) == "cannot exec"
    assert outputs.stdout.getvalue() == b"a"  # type: ignore[attr-defined]
    assert outputs.stderr.getvalue() == b"b"  # type: ignore[attr-defined]


def test_pump_raw_for_tty() -> None:
    outputs = Outputs(io.BytesIO(), io.BytesIO())
    assert pump([b"\x01\x00raw"], tty=True, outputs=outputs) is None
    assert outputs.stdout.getvalue() == b"\x01\x00raw"  # type: ignore[attr-defined]


def test_json_lines_across_chunks() -> None:
    chunks = [b'{"status":"a"}\n{"sta', b'tus":"b"}\n', b'\n{"id":"x"}']
    assert list(json_lines(chunks)) == [{"status": "a"}, {"status": "b"}, {"id": "x"}]
    assert list(json_lines([b'{"a":1}{"b":2}'])) == [{"a": 1}, {"b": 2}]
