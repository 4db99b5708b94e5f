"""Progress of a pull or push, as domain records; `engine.api.wire.progress` makes the JSON.

Docker's clients draw one line per layer, keyed by `id`, and redraw it on each update;
a status without an id is a line of its own. Byte counts are sent at most every
`THROTTLE` seconds per layer, as dockerd does, so a fast download does not flood the
client with redraws.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

THROTTLE = 0.1


@attrs.frozen
class Progress:
    """One progress message. `layer` lines carry an (empty) progress detail."""

    status: str
    id: str = ""
    current: int | None = None
    total: int | None = None
    layer: bool = False
    aux: dict[str, Any] | None = None


ProgressSink = Callable[[Progress], None]


def discard(_: Progress) -> None:
    """A sink for callers that show nothing (`run`'s implicit pull in the moor CLI does)."""


@attrs.define
class ByteCounter:
    """Reports `status` with a byte count for one layer, throttled."""

    sink: ProgressSink
    status: str
    id: str
    total: int
    current: int = 0
    _last: float = 0.0

    def add(self, n: int) -> None:
        self.current += n
        now = time.monotonic()
        if now - self._last >= THROTTLE or self.current >= self.total:
            self._last = now
            self.sink(Progress(self.status, self.id, self.current, self.total, layer=True))


__all__ = ["THROTTLE", "ByteCounter", "Progress", "ProgressSink", "discard"]
