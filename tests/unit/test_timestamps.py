"""Docker's time values (since/until), one home: engine.timestamps, and the events
endpoint that once took `since=0` for "no since"."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import attrs
import pytest

from engine.api.handlers import events as events_api
from engine.api.http import Request, StreamResponse
from engine.errors import InvalidParameter
from engine.events import EventBus
from engine.timestamps import (
    TimestampError,
    filter_time_ns,
    get_timestamp,
    optional_query_time_ns,
    parse_timestamps,
)

NS = 1_000_000_000


@pytest.mark.parametrize(("value", "expected"), [
    ("0", (0, 0)), ("1136073600.000000001", (1136073600, 1)), ("5.5", (5, 500_000_000)),
    ("5.1234567891", (5, 123_456_789)), ("-1.5", (-1, 500_000_000)), ("+7", (7, 0)),
])
def test_parse_timestamps_as_docker(value: str, expected: tuple[int, int]) -> None:
    assert parse_timestamps(value) == expected


@pytest.mark.parametrize("value", ["", "x", "5.", "1e5", "1.-5"])
def test_parse_timestamps_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="not unix seconds"):
        parse_timestamps(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("0", "0"),  # the epoch, never "a duration of zero ago"
    ("-5s", "1000000605.000000000"),  # a negative duration is in the future
    ("2013-01-02Z", "1357084800.000000000"),
    ("2013-01-02+01:00", "1357081200.000000000"),
])
def test_get_timestamp_shapes(value: str, expected: str) -> None:
    assert get_timestamp(value, now_ns=1_000_000_600 * NS) == expected


def test_get_timestamp_hour_only_is_local_time() -> None:
    local = int(time.mktime((2013, 1, 2, 13, 0, 0, 0, 0, -1)))
    assert get_timestamp("2013-01-02T13") == f"{local}.000000000"  # Docker's hour-only layout


@pytest.mark.parametrize(("value", "message"), [
    ("yesterday", 'failed to parse value as time or duration: "yesterday"'),
    ("-5", 'parsing time "-5": not an RFC 3339 date'),
    ("2013-02-30", 'parsing time "2013-02-30": day out of range'),
    ("2013-01-02T13:61", 'parsing time "2013-01-02T13:61": minute out of range'),
])
def test_get_timestamp_refusals(value: str, message: str) -> None:
    with pytest.raises(TimestampError) as info:
        get_timestamp(value)
    assert info.value.message == message


def test_filter_time_reads_every_shape() -> None:
    now = 2_000_000_000 * NS
    assert filter_time_ns("24h", now) == now - 86_400 * NS
    assert filter_time_ns("1700000000.5", now) == 1_700_000_000 * NS + NS // 2
    assert filter_time_ns("2023-11-14T22:13:20Z", now) == 1_700_000_000 * NS
    assert filter_time_ns("0", now) == 0


def test_query_time_tells_the_epoch_from_nothing() -> None:
    assert optional_query_time_ns(None) is None
    assert optional_query_time_ns("  ") is None
    assert optional_query_time_ns("0") == 0
    with pytest.raises(InvalidParameter, match="until"):
        optional_query_time_ns("10m", name="until")  # durations are the client's to convert


# the events endpoint ---------------------------------------------------------------------


@attrs.define
class _Engine:
    events: EventBus


class _NoBody:
    async def next_chunk(self) -> bytes | None:
        return None


class _Collect:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    async def send(self, data: bytes) -> None:
        self.lines += [json.loads(line) for line in data.splitlines() if line]


async def _events(engine: _Engine, query: str) -> list[dict[str, Any]]:
    found = events_api.router.match("GET", "/events")
    assert found is not None
    handler, params = found
    req = Request("GET", "/events", parse_qs(query, keep_blank_values=True), {}, "1.47",
                  _NoBody(), params)
    resp = await handler(req, engine)  # type: ignore[arg-type]
    assert isinstance(resp, StreamResponse)
    out = _Collect()
    await resp.produce(out)
    return out.lines


async def test_events_since_zero_lists_every_stored_event() -> None:
    """`docker events --since 0` once printed nothing: 0 was taken for "no since"."""
    engine = _Engine(EventBus())
    engine.events.publish("container", "create", "c1", {})
    engine.events.publish("container", "start", "c1", {})
    until = f"{time.time_ns() // NS + 1}"
    lines = await _events(engine, f"since=0&until={until}")
    assert [line["Action"] for line in lines] == ["create", "start"]
    # until alone replays the stored events up to it, as dockerd does
    assert len(await _events(engine, f"until={until}")) == 2


async def test_events_since_after_until_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="cannot be after `until`"):
        await _events(_Engine(EventBus()), "since=20&until=10")
