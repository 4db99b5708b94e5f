"""Docker's time values: `since` and `until` of events, logs, and the `until` filters.

Three shapes, as Docker reads them (moby's `api/types/time`):

- unix seconds with an optional fraction, `1700000000` or `1700000000.5` (what the
  docker CLI sends: `parse_timestamps`, Docker's ParseTimestamps);
- RFC 3339 dates: `2023-11-14`, `2023-11-14T22:13`, `2023-11-14T22:13:20.5Z`,
  `…+02:00`; without a zone the date is local time (`parse_date`);
- Go durations counted back from now, `10m`, `1h30m` (`engine.durations`).

`get_timestamp` is Docker's GetTimestamp, the client-side conversion of any of the
three into unix seconds (`moor --since`; the daemon for `until` filters, which clients
send unconverted: `filter_time_ns`). `query_time_ns` reads the `since`/`until` query
arguments of events and logs: unix seconds, or (for clients other than docker's) a
date; durations are the client's business there.

A bare `0` is the epoch, never "not given": callers that have a "not given" ask for
presence (`optional_query_time_ns`). Standard library only: `moor` imports it.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from engine.durations import DurationError, parse_duration
from engine.errors import InvalidParameter

_NS: Final = 1_000_000_000

_UNIX = re.compile(r"([+-]?\d+)(?:\.(\d+))?")
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?)?"
    r"([Zz]|[+-]\d{2}:?\d{2})?"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RANGE_NAMES: Final = ("month", "day", "hour", "minute", "second")


class TimestampError(InvalidParameter):
    """A time value none of Docker's shapes reads; the message is Docker's."""


def parse_timestamps(value: str) -> tuple[int, int]:
    """Docker's ParseTimestamps: `<sec>[.<fraction>]` as (seconds, nanoseconds).

    Digits beyond nine in the fraction are cut, as Docker cuts them; `-1.5` is
    (-1, 500000000), half a second after -1 s, as Docker reads it. ValueError if
    `value` is not of that shape.
    """
    m = _UNIX.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"not unix seconds: {value!r}")
    return int(m.group(1)), int((m.group(2) or "")[:9].ljust(9, "0"))


def unix_ns(value: str) -> int:
    """`parse_timestamps` as nanoseconds since the epoch."""
    seconds, nanos = parse_timestamps(value)
    return seconds * _NS + nanos


def parse_date(value: str) -> int | None:
    """An RFC 3339 date or date-time in nanoseconds since the epoch; None if `value` is
    not date-shaped. Without a zone it is local time, as Docker reads it. Lenient
    where other clients are (`t` or a blank for `T`, `z`, `+0200`); a date-shaped
    value with a field out of range is a TimestampError in Go's words."""
    text = value.strip()
    m = _DATE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    fields = (int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    try:
        moment = datetime(int(year), *fields)
    except ValueError:
        limits = ((1, 12), (1, 31), (0, 23), (0, 59), (0, 59))
        bad = next((name for name, v, (lo, hi) in zip(_RANGE_NAMES, fields, limits, strict=True)
                    if not lo <= v <= hi), "day")
        raise TimestampError(f'parsing time "{value}": {bad} out of range') from None
    if zone is None:
        seconds = int(time.mktime((*moment.timetuple()[:8], -1)))
    else:
        seconds = calendar.timegm(moment.timetuple())
        if zone not in ("Z", "z"):
            digits = zone[1:].replace(":", "")
            shift = int(digits[:2]) * 3600 + int(digits[2:]) * 60
            seconds += -shift if zone[0] == "+" else shift
    return seconds * _NS + int((fraction or "")[:9].ljust(9, "0"))


def get_timestamp(value: str, now_ns: int | None = None) -> str:
    """Docker's GetTimestamp: a duration ago, a date, or unix seconds as the API's
    `<seconds>.<nanoseconds>` (unix seconds pass through as given).

    A duration counts back from `now_ns` (default: now), to the nanosecond (Docker
    cuts it to the second). `0` is not a duration here but the epoch.
    """
    text = value.strip()
    if text != "0":
        try:
            ago = parse_duration(text)
        except DurationError:
            pass
        else:
            return _sec_nanos((time.time_ns() if now_ns is None else now_ns) - ago)
    stamp = parse_date(text)
    if stamp is not None:
        return _sec_nanos(stamp)
    if "-" in text:
        # Docker: anything with a dash was meant as a date (so negative seconds fail)
        raise TimestampError(f'parsing time "{value}": not an RFC 3339 date')
    if _UNIX.fullmatch(text) is None:
        raise TimestampError(f'failed to parse value as time or duration: "{value}"')
    return text


def filter_time_ns(value: str, now_ns: int | None = None) -> int:
    """An `until` (or `since`) filter value in nanoseconds since the epoch: anything
    `get_timestamp` reads, as dockerd reads prune and image filters."""
    return unix_ns(get_timestamp(value, now_ns))


def filter_time(value: str, now: datetime | None = None) -> datetime:
    """`filter_time_ns` as an aware datetime (in local time, like the date it may
    name), for comparing with creation times; `now` is the reference for durations."""
    now_ns = None if now is None else _datetime_ns(now)
    seconds, nanos = divmod(filter_time_ns(value, now_ns), _NS)
    return (_EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)).astimezone()


def _datetime_ns(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


def query_time_ns(value: str | None, *, name: str = "timestamp") -> int:
    """A `since`/`until` query argument in nanoseconds since the epoch; 0 when absent
    or blank (so only where 0 and "not given" mean the same, as for logs)."""
    return optional_query_time_ns(value, name=name) or 0


def optional_query_time_ns(value: str | None, *, name: str = "timestamp") -> int | None:
    """A `since`/`until` query argument: unix seconds (`<sec>[.<nanosec>]`, what the
    docker CLI sends) or an RFC 3339 date; None when absent or blank, 0 for `0`."""
    if value is None or not value.strip():
        return None
    try:
        return unix_ns(value)
    except ValueError:
        pass
    try:
        stamp = parse_date(value)
    except TimestampError:
        raise TimestampError(f"invalid value for {name}: {value!r}") from None
    if stamp is None:
        raise TimestampError(
            f"invalid value for {name}: {value!r}: "
            "want seconds since the epoch (<sec>[.<nanosec>]) or an RFC3339 date")
    return stamp


def _sec_nanos(ns: int) -> str:
    seconds, nanos = divmod(ns, _NS)
    return f"{seconds}.{nanos:09d}"


__all__ = [
    "TimestampError",
    "filter_time",
    "filter_time_ns",
    "get_timestamp",
    "optional_query_time_ns",
    "parse_date",
    "parse_timestamps",
    "query_time_ns",
    "unix_ns",
]
