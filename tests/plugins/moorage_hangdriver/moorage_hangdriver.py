"""`hangnet` and `hangvol`: drivers that block on purpose (for the tests; see README.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import attrs

from network_drivers.inert import InertDriver
from plugins import hookimpl
from plugins.network_contract import DriverContext, NetworkConfig, NetworkDriver
from plugins.volume_contract import VolumeCapabilities, VolumeDriver, VolumeInfo


def block_until_released(directory: Path, call: str) -> None:
    """Block this thread (never yielding to trio) until `directory/release` exists."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"entered-{call}").touch()
    while not (directory / "release").exists():
        time.sleep(0.05)


@attrs.define(eq=False)
class HangNetDriver(InertDriver):
    """Makes no kernel objects (moord's `InertDriver`); blocks in `create_network`."""

    name: str = "hangnet"
    namespace: Literal["private"] = "private"
    uses_ipam: bool = True
    singleton: bool = False
    state_dir: Path | None = None

    async def setup(self, context: DriverContext) -> None:
        self.state_dir = context.state_dir

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(options)

    async def create_network(self, network: NetworkConfig) -> None:
        if network.name.startswith("hang") and self.state_dir is not None:
            block_until_released(self.state_dir, f"create_network-{network.name}")


@attrs.define(eq=False)
class HangVolDriver:
    directory: Path
    name: str = "hangvol"
    scope: str = "local"

    def capabilities(self) -> VolumeCapabilities:
        return VolumeCapabilities()

    def validate(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(options)

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        block_until_released(self.directory, f"create-{name}")
        (self.directory / name).mkdir(exist_ok=True)
        return VolumeInfo(name=name, mountpoint=str(self.directory / name))

    async def remove(self, name: str) -> None:
        (self.directory / name).rmdir()

    async def mount(self, name: str, container_id: str) -> str:
        return str(self.directory / name)

    async def unmount(self, name: str, container_id: str) -> None:
        return None

    async def path(self, name: str) -> str:
        return str(self.directory / name)

    async def list(self) -> Sequence[VolumeInfo]:
        if not self.directory.is_dir():
            return []
        return [VolumeInfo(name=p.name, mountpoint=str(p))
                for p in self.directory.iterdir() if p.is_dir()]

    async def get(self, name: str) -> VolumeInfo:
        return VolumeInfo(name=name, mountpoint=str(self.directory / name))


@hookimpl
def moorage_network_drivers() -> Sequence[NetworkDriver]:
    return [HangNetDriver()]


@hookimpl
def moorage_volume_drivers(data_root: Path) -> Sequence[VolumeDriver]:
    return [HangVolDriver(data_root / "plugins" / "hangvol")]
