"""Numbers in query strings are read as Go's strconv reads them, with dockerd's 400s."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from engine.api.http import Request
from engine.errors import InvalidParameter


def _request(query: str) -> Request:
    return Request("POST", "/x", parse_qs(query, keep_blank_values=True), {}, "1.50",
                   body_source=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "value"), [("t=5", 5), ("t=-1", -1), ("t=%2B3", 3), ("t=", None),
                                               ("", None), (f"t={2**63 - 1}", 2**63 - 1)])
def test_integers_read(query: str, value: int | None) -> None:
    assert _request(query).int_arg("t") == value


@pytest.mark.parametrize(("text", "why"), [("1_000", "not an integer"), ("%205", "not an integer"),
                                           ("\u0661", "not an integer"), ("1.5", "not an integer"),
                                           (str(2**63), "value out of range"),
                                           (str(-(2**63) - 1), "value out of range")])
def test_integers_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidParameter, match=why):
        _request(f"t={text}").int_arg("t")


@pytest.mark.parametrize(("query", "size"), [("h=24&w=80", (24, 80)), ("", (0, 0)),
                                              (f"h={2**32 - 1}&w=1", (2**32 - 1, 1))])
def test_terminal_sizes(query: str, size: tuple[int, int]) -> None:
    assert _request(query).terminal_size() == size


@pytest.mark.parametrize(("query", "message"), [
    ("h=-1&w=80", 'invalid resize height "-1"'),
    ("h=1&w=x", 'invalid resize width "x"'),
    (f"h={2**32}&w=1", f'invalid resize height "{2**32}"'),
    ("h=\u0662&w=1", 'invalid resize height "\\u0662"'),
])
def test_terminal_sizes_refused(query: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        _request(query).terminal_size()
    assert info.value.message == message
