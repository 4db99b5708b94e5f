"""The volume driver contract (filled in with the volume drivers issue)."""

from __future__ import annotations

from typing import Protocol


class VolumeDriver(Protocol):
    @property
    def name(self) -> str: ...
