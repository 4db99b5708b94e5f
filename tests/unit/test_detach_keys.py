"""Detach keys: Docker's notation, and finding the sequence in chunked input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.containers.detachkeys import EscapeWatch, parse_detach_keys
from engine.errors import InvalidParameter


@pytest.mark.parametrize(("spec", "expected"), [
    ("", b"\x10\x11"),
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("ctrl-a,x", b"\x01x"),
    ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
    ("DEL", b"\x7f"),
    ("a", b"a"),
])
def test_parse(spec: str, expected: bytes) -> None:
    assert parse_detach_keys(spec) == expected


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-1", "ctrl-A", "ab", "ctrl-p,,ctrl-q", "é"])
def test_parse_refuses(spec: str) -> None:
    with pytest.raises(InvalidParameter, match=r"Invalid detach keys \(.*\) provided"):
        parse_detach_keys(spec)


def test_sequence_in_one_chunk_passes_what_came_before() -> None:
    watch = EscapeWatch(b"\x10\x11")
    assert watch.feed(b"ls\n\x10\x11after") == b"ls\n"
    assert watch.detached
    assert watch.feed(b"more") == b""


def test_sequence_split_across_chunks() -> None:
    watch = EscapeWatch(b"\x10\x11")
    assert watch.feed(b"x\x10") == b"x"
    assert not watch.detached
    assert watch.feed(b"\x11") == b""
    assert watch.detached


def test_a_false_start_is_given_back() -> None:
    watch = EscapeWatch(b"\x10\x11")
    assert watch.feed(b"\x10") == b""
    assert watch.feed(b"y") == b"\x10y"
    assert watch.feed(b"\x10\x10") == b"\x10"
    assert watch.feed(b"\x11") == b""
    assert watch.detached


def test_overlapping_prefix() -> None:
    watch = EscapeWatch(b"aab")
    assert watch.feed(b"aaab") == b"a"
    assert watch.detached


@given(st.lists(st.binary(max_size=8), max_size=12), st.binary(min_size=1, max_size=3))
def test_bytes_are_kept_until_the_sequence(chunks: list[bytes], keys: bytes) -> None:
    """Whatever the chunking, the output is the input up to the first occurrence of the
    sequence; without one, the input minus a possibly held tail."""
    watch = EscapeWatch(keys)
    data = b"".join(chunks)
    out = b"".join(watch.feed(c) for c in chunks)
    at = data.find(keys)
    if at >= 0:
        assert watch.detached
        assert out == data[:at]
    else:
        assert not watch.detached
        assert data.startswith(out)
        assert len(data) - len(out) == watch.matched
