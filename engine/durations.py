"""Go durations (`1h30m`, `1.5s`, `-10m`, `0`), read and written as Go's `time` package does.

Docker takes durations wherever Go's `time.ParseDuration` reads them (`--health-*`
flags, HEALTHCHECK options, `--since 10m`, `until=24h` filters) and prints them with
`Duration.String` in its messages, so moorage keeps one copy of both rules here.
Standard library only: `moor` imports it.

The rules: an optional sign, then one or more `<number><unit>` parts, a number being
digits with an optional fraction (`1.5`, `.5`, `1.`, not `.`); units `ns`, `us`, `µs`
(U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`. A bare `0` (or `+0`, `-0`) is zero; any
other number needs a unit. Values beyond ±(2⁶³-1) ns are refused.
"""

from __future__ import annotations

from typing import Final

from engine.errors import InvalidParameter

NANOSECOND: Final = 1
MICROSECOND: Final = 1_000
MILLISECOND: Final = 1_000_000
SECOND: Final = 1_000_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

UNITS: Final = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # µ, the micro sign
    "\u03bcs": MICROSECOND,  # μ, the Greek letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}

_MAX: Final = (1 << 63) - 1
_DIGITS: Final = frozenset("0123456789")


class DurationError(InvalidParameter):
    """Not a Go duration; the message is Go's (`time: invalid duration "x"`)."""


def go_quote(text: str) -> str:
    """Go's `time.quote`: double quotes, `"` and `\\` escaped, other bytes outside
    printable ASCII as `\\xNN` (of their UTF-8 encoding)."""
    out = ['"']
    for ch in text:
        if ch < " " or ord(ch) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration`, in nanoseconds; DurationError with Go's message."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationError(f"time: invalid duration {go_quote(text)}")
    total = 0
    pos = 0
    while pos < len(rest):
        start = pos
        while pos < len(rest) and rest[pos] in _DIGITS:
            pos += 1
        whole = rest[start:pos]
        fraction = ""
        if pos < len(rest) and rest[pos] == ".":
            pos += 1
            frac_start = pos
            while pos < len(rest) and rest[pos] in _DIGITS:
                pos += 1
            fraction = rest[frac_start:pos]
        if not whole and not fraction:
            raise DurationError(f"time: invalid duration {go_quote(text)}")
        unit_start = pos
        while pos < len(rest) and rest[pos] != "." and rest[pos] not in _DIGITS:
            pos += 1
        unit = rest[unit_start:pos]
        if not unit:
            raise DurationError(f"time: missing unit in duration {go_quote(text)}")
        scale = UNITS.get(unit)
        if scale is None:
            raise DurationError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        value = int(whole or "0") * scale
        if fraction:
            # Go keeps at most the digits that fit in 63 bits and multiplies in floating
            # point, truncating: the same here, so `1.0000000001h` rounds as Go's does
            digits = fraction[:18]
            value += int(int(digits) * (scale / 10 ** len(digits)))
        total += value
        if total > _MAX + (1 if negative else 0):
            raise DurationError(f"time: invalid duration {go_quote(text)}")
    return -total if negative else total


def format_duration(ns: int) -> str:
    """Go's `Duration.String`: `1h0m1.25s`, `1m30s`, `500ms`, `1.5µs`, `0s`."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < MICROSECOND:
        return f"{sign}{u}ns"
    if u < MILLISECOND:
        return f"{sign}{_decimal(u, MICROSECOND)}\u00b5s"
    if u < SECOND:
        return f"{sign}{_decimal(u, MILLISECOND)}ms"
    hours, rest = divmod(u, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    text = f"{_decimal(rest, SECOND)}s"
    if hours:
        text = f"{hours}h{minutes}m{text}"
    elif minutes:
        text = f"{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


__all__ = [
    "HOUR",
    "MICROSECOND",
    "MILLISECOND",
    "MINUTE",
    "NANOSECOND",
    "SECOND",
    "UNITS",
    "DurationError",
    "format_duration",
    "go_quote",
    "parse_duration",
]
