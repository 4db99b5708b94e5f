"""Go's `time.ParseDuration`, for HEALTHCHECK's intervals: Docker takes what Go takes."""

from __future__ import annotations

import re

from engine.build.dockerfile.errors import _go_quote, _Refused

_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000}
_NS |= {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def _parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    quoted = _go_quote(text)
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    if not body:
        raise _Refused(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match or match.end() == pos or not (match.group(1) or match.group(2)):
            raise _Refused(f"time: invalid duration {quoted}")
        unit = match.group(3)
        if not unit:
            raise _Refused(f"time: missing unit in duration {quoted}")
        if unit not in _NS:
            raise _Refused(f"time: unknown unit {_go_quote(unit)} in duration {quoted}")
        number = float(f"{match.group(1) or '0'}.{match.group(2) or '0'}")
        total += number * _NS[unit]
        pos = match.end()
    return sign * round(total)
