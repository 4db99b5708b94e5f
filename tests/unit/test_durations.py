"""Go durations, read and printed as Go's time package does (one home: engine.durations)."""

from __future__ import annotations

import pytest

from engine.durations import DurationError, format_duration, go_quote, parse_duration
from engine.errors import InvalidParameter

S = 1_000_000_000


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("+0", 0), ("-0", 0), ("1ns", 1), ("1us", 1_000), ("1\u00b5s", 1_000),
    ("1\u03bcs", 1_000), ("1ms", 1_000_000), ("1s", S), ("1m", 60 * S), ("1h", 3600 * S),
    ("1h2m3s", 3723 * S), ("1.5s", 1_500_000_000), (".5s", 500_000_000), ("1.s", S),
    ("-1.5h", -5400 * S), ("+10m", 600 * S), ("2h45m30.5s", 9930 * S + S // 2),
    ("1.0000000001s", S), ("0.1ns", 0), ("9223372036854775807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)),
])
def test_parse_like_go(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'),
    (".", 'time: invalid duration "."'),
    ("s", 'time: invalid duration "s"'),
    (".s", 'time: invalid duration ".s"'),
    ("10", 'time: missing unit in duration "10"'),
    ("1h5", 'time: missing unit in duration "1h5"'),
    ("5y", 'time: unknown unit "y" in duration "5y"'),
    ("1h-5m", 'time: unknown unit "h-" in duration "1h-5m"'),
    (" 1s", 'time: invalid duration " 1s"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("1\u00e9", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
])
def test_refusals_are_worded_as_go_words_them(text: str, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert info.value.message == message
    assert isinstance(info.value, InvalidParameter)  # a 400 wherever it reaches the API


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1_500, "1.5\u00b5s"), (1_500_000, "1.5ms"),
    (S, "1s"), (90 * S, "1m30s"), (3600 * S, "1h0m0s"), (-90 * S, "-1m30s"),
    (3601 * S + S // 4, "1h0m1.25s"),
])
def test_format_like_go(ns: int, text: str) -> None:
    assert format_duration(ns) == text


def test_format_then_parse_is_the_same_duration() -> None:
    for ns in (1, 1_234, 5_678_901, 12 * S + 3, 3 * 3600 * S + 7):
        assert parse_duration(format_duration(ns)) == ns


def test_go_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\t") == '"\\x09"'
