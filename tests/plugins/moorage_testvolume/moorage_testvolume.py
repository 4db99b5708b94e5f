"""`testvol`: a third-party moorage volume driver, defined outside moorage for the tests.

It implements `plugins.volume_contract.VolumeDriver` and registers through the
`moorage_volume_drivers` hook, found by moord through this package's entry point in the
`moorage.plugins` group. Volumes are directories under `<data-root>/plugins/testvol/`;
`mount` and `unmount` leave a trace (`mounted-by`) that tests look at.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from plugins import hookimpl
from plugins.volume_contract import (
    InvalidVolumeOption,
    VolumeCapabilities,
    VolumeDriver,
    VolumeInfo,
    VolumeNotFoundError,
)

NAME = "testvol"


class TraceDriver:
    """Directories with a colour; every blocking step in a worker thread."""

    name = NAME
    scope = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def capabilities(self) -> VolumeCapabilities:
        return VolumeCapabilities(scope="local", populate=True)

    def validate(self, options: Mapping[str, str]) -> dict[str, str]:
        for key in options:
            if key != "color":
                raise InvalidVolumeOption(f"testvol knows only the color option, not {key!r}")
        return dict(options)

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _info(self, name: str) -> VolumeInfo:
        meta_file = self._dir(name) / "meta.json"
        try:
            meta = json.loads(meta_file.read_text())
        except FileNotFoundError:
            raise VolumeNotFoundError(name) from None
        mounted = (self._dir(name) / "mounted-by").exists()
        return VolumeInfo(name=name, mountpoint=str(self._dir(name) / "data"),
                          created=dt.datetime.fromisoformat(meta["created"]),
                          status={"color": meta.get("color", ""),
                                  "mounted": "yes" if mounted else "no"})

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        checked = self.validate(options)

        def make() -> VolumeInfo:
            (self._dir(name) / "data").mkdir(parents=True)
            meta = {"color": checked.get("color", ""),
                    "created": dt.datetime.now(dt.timezone.utc).isoformat()}
            (self._dir(name) / "meta.json").write_text(json.dumps(meta))
            return self._info(name)

        return await trio.to_thread.run_sync(make)

    async def remove(self, name: str) -> None:
        def rm() -> None:
            if not self._dir(name).exists():
                raise VolumeNotFoundError(name)
            shutil.rmtree(self._dir(name))

        await trio.to_thread.run_sync(rm)

    async def mount(self, name: str, container_id: str) -> str:
        def mark() -> str:
            info = self._info(name)
            (self._dir(name) / "mounted-by").write_text(container_id + "\n")
            return info.mountpoint

        return await trio.to_thread.run_sync(mark)

    async def unmount(self, name: str, container_id: str) -> None:
        await trio.to_thread.run_sync(lambda: (self._dir(name) / "mounted-by").unlink(missing_ok=True))

    async def path(self, name: str) -> str:
        return (await self.get(name)).mountpoint

    async def list(self) -> Sequence[VolumeInfo]:
        def scan() -> list[VolumeInfo]:
            if not self.root.is_dir():
                return []
            return [self._info(d.name) for d in sorted(self.root.iterdir())
                    if (d / "meta.json").exists()]

        return await trio.to_thread.run_sync(scan)

    async def get(self, name: str) -> VolumeInfo:
        return await trio.to_thread.run_sync(self._info, name)


@hookimpl
def moorage_volume_drivers(data_root: Path) -> Sequence[VolumeDriver]:
    return [TraceDriver(Path(data_root) / "plugins" / NAME)]
