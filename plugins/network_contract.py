"""The network driver contract (filled in with the network drivers issue)."""

from __future__ import annotations

from typing import Protocol


class NetworkDriver(Protocol):
    @property
    def name(self) -> str: ...
