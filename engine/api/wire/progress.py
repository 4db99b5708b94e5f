"""Docker's JSON progress messages (`pkg/jsonmessage`) for pulls, pushes and loads."""

from __future__ import annotations

import json
from typing import Any

from engine.registry.progress import Progress

_BAR_WIDTH = 50
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: float) -> str:
    """go-units `HumanSize`: decimal units, four significant digits (`3.146MB`)."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    """The `progress` string older clients print: `[==>   ]  1.2MB/3.4MB`."""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(_BAR_WIDTH, int(current * _BAR_WIDTH / total))
    bar = "=" * filled + (">" if filled < _BAR_WIDTH else "") + " " * (_BAR_WIDTH - filled - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def message(p: Progress) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if p.status:
        doc["status"] = p.status
    if p.current is not None:
        total = p.total or 0
        doc["progressDetail"] = {"current": p.current, "total": total} if total else {
            "current": p.current}
        doc["progress"] = progress_bar(p.current, total)
    elif p.layer or p.aux is not None:
        doc["progressDetail"] = {}
    if p.id:
        doc["id"] = p.id
    if p.aux is not None:
        doc["aux"] = p.aux
    return doc


def encode(p: Progress) -> bytes:
    return json.dumps(message(p)).encode() + b"\r\n"


def encode_error(text: str) -> bytes:
    """An error after the 200 went out: the CLI prints it and exits non-zero."""
    return json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n"


__all__ = ["encode", "encode_error", "human_size", "message", "progress_bar"]
