"""Units in the words and forms Docker uses (go-units): durations and byte sizes."""

from __future__ import annotations

import re


def human_duration(seconds: float) -> str:
    """go-units `HumanDuration`: how long ago, in the words `docker ps` uses."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_RAM = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?(i?b)?$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def ram_in_bytes(text: str) -> int:
    """go-units `RAMInBytes`: `10m` is 10 MiB (binary units, as `--log-opt max-size` reads it)."""
    m = _RAM.match(text.strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    number, unit = float(m.group(1)), (m.group(2) or "").lower()
    return int(number * 1024 ** _POWERS[unit])
