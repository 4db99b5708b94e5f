"""A VolumeDriver plugin seen through `plugins.volume_contract`, so the volume service
treats `docker volume create -d rclone` like `-d local`.

Each contract method is one plugin call (`VolumeDriver.Create`, `.Remove`, `.Mount` and
`.Unmount` with the container's ID, `.Path`, `.Get`, `.List`, `.Capabilities`), made
through the registry, which finds and activates the plugin the first time (waiting for
it within the deadline). The plugin validates its own options (at `Create`, as with
dockerd), so `validate` passes them through.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from engine.docker_plugins.adapter import Call, PluginAdapter, answer_or_nothing
from engine.docker_plugins.registry import VOLUME, PluginRegistry
from engine.docker_plugins.tables import DriverTable
from plugins.volume_contract import (
    LOCAL_SCOPE,
    VolumeCapabilities,
    VolumeDriver,
    VolumeDriverError,
    VolumeInfo,
    VolumeNotFoundError,
)

log = logging.getLogger(__name__)


def _created(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _info(doc: Any, name: str) -> VolumeInfo:
    """A `Volume` object of the protocol as the contract's VolumeInfo."""
    if not isinstance(doc, Mapping):
        raise VolumeDriverError(f"the plugin's answer for volume {name} is not an object")
    status = doc.get("Status")
    return VolumeInfo(name=str(doc.get("Name") or name), mountpoint=str(doc.get("Mountpoint") or ""),
                      created=_created(doc.get("CreatedAt")),
                      status={str(k): str(v) for k, v in status.items()}
                      if isinstance(status, Mapping) else {})


@attrs.define(eq=False)
class RemoteVolumeDriver(PluginAdapter):
    """The volume driver of the Docker plugin called `name`."""

    kind: ClassVar[str] = VOLUME
    noun: ClassVar[str] = "volume"
    error: ClassVar[type[Exception]] = VolumeDriverError

    _scope: str = attrs.field(default=LOCAL_SCOPE, kw_only=True)

    @property
    def scope(self) -> str:
        return self._scope

    def capabilities(self) -> VolumeCapabilities:
        return VolumeCapabilities(scope=self._scope)

    def validate(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(options)

    def missing(self) -> str:
        return f'error looking up volume plugin {self._name}: plugin "{self._name}" not found'

    async def introduce(self, call: Call) -> None:
        """The plugin's scope (`local` when it does not say, as dockerd assumes)."""
        answer = await answer_or_nothing(call, "VolumeDriver.Capabilities")
        self._scope = str((answer.get("Capabilities") or {}).get("Scope") or LOCAL_SCOPE).lower()

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        await self.call("Create", {"Name": name, "Opts": dict(options)})
        try:  # the mountpoint and creation time inspect shows, when the plugin says them
            return await self.get(name)
        except (VolumeDriverError, VolumeNotFoundError):
            return VolumeInfo(name=name, mountpoint="")

    async def remove(self, name: str) -> None:
        await self.call("Remove", {"Name": name})

    async def mount(self, name: str, container_id: str) -> str:
        answer = await self.call("Mount", {"Name": name, "ID": container_id})
        return self.required(answer, "Mountpoint", f"Mount {name}")

    async def unmount(self, name: str, container_id: str) -> None:
        await self.call("Unmount", {"Name": name, "ID": container_id})

    async def path(self, name: str) -> str:
        return str((await self.call("Path", {"Name": name})).get("Mountpoint") or "")

    async def list(self) -> Sequence[VolumeInfo]:
        volumes = (await self.call("List", {})).get("Volumes") or []
        if not isinstance(volumes, list):
            raise VolumeDriverError(f"volume plugin {self._name}: List: Volumes is not a list")
        return [_info(v, "") for v in volumes]

    async def get(self, name: str) -> VolumeInfo:
        try:
            answer = await self.call("Get", {"Name": name})
        except VolumeDriverError as exc:
            if "not found" in str(exc).lower():
                raise VolumeNotFoundError(name) from None
            raise
        return _info(answer.get("Volume"), name)


def volume_driver_table(builtins: dict[str, VolumeDriver],
                        registry: PluginRegistry) -> DriverTable[VolumeDriver]:
    """The pluggy volume drivers, and a Docker volume plugin for any other name."""
    return DriverTable(builtins, registry, VOLUME, lambda name: RemoteVolumeDriver(name, registry))
