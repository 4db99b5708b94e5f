"""The built-in volume driver's hook, named by moorage's `moorage.plugins` entry point.

A package installed with an entry point in the same group may add drivers or replace
`local` by name (it loads after this one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from plugins import hookimpl
from plugins.volume_contract import VolumeDriver
from volume_drivers.local import LocalDriver


@hookimpl
def moorage_volume_drivers(data_root: Path) -> Sequence[VolumeDriver]:
    return [LocalDriver(Path(data_root) / "volumes")]
