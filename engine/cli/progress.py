"""Drawing a pull or push progress stream: one line per layer, redrawn in place on a TTY.

Without a terminal only status changes are printed (docker's behaviour), so logs of
a scripted pull stay short.
"""

from __future__ import annotations

from typing import IO, Any

_BAR_WIDTH = 50
_UNITS = ("B", "kB", "MB", "GB", "TB")


def _human(size: float) -> str:
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def render_line(message: dict[str, Any]) -> str:
    """`<id>: <status> [====>   ]  1.2MB/3.4MB` from a message's progress detail."""
    text = str(message.get("status") or "")
    detail = message.get("progressDetail") or {}
    current, total = detail.get("current"), detail.get("total")
    if isinstance(current, int) and isinstance(total, int) and total > 0:
        filled = min(_BAR_WIDTH, current * _BAR_WIDTH // total)
        bar = "=" * filled + (">" if filled < _BAR_WIDTH else "") + " " * (_BAR_WIDTH - filled - 1)
        text += f" [{bar}] {_human(current):>8}/{_human(total)}"
    elif message.get("progress"):
        text += f" {message['progress']}"
    prefix = f"{message['id']}: " if message.get("id") else ""
    return prefix + text


class TerminalProgress:
    """Keeps the lines of ids already shown and rewrites one when its id reports again."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: list[str] = []  # the id of each line drawn so far ("" for plain lines)

    def show(self, message: dict[str, Any]) -> None:
        ident = str(message.get("id") or "")
        line = render_line(message)
        if ident and ident in self.lines:
            up = len(self.lines) - self.lines.index(ident)
            self.stream.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        else:
            self.lines.append(ident)
            self.stream.write(line + "\n")
        self.stream.flush()


__all__ = ["TerminalProgress", "render_line"]
