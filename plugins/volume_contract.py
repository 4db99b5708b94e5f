"""The volume driver contract: what `docker volume create -d NAME` talks to.

A volume driver owns the data of the volumes it creates; moord owns their metadata
(labels, which containers use them, whether the image's content was copied in) and
records it crash-safely under `<data-root>/state/volumes/`. The contract is
documented here and in docs/volumes.md.

Drivers are plain objects returned by the `moorage_volume_drivers(data_root)` hook.
moord calls their synchronous members on its trio thread (they must not block: no
disk or network I/O) and awaits their async methods under trio. An async method that
blocks must hand the work to a thread itself (`trio.to_thread.run_sync`): one driver
stalling the event loop would stall every container.

What moord guarantees to a driver:

- `create` gets options that `validate` accepted, and is called at most once for a
  name that moord does not know yet (moord serialises operations on one name);
- `mount` / `unmount` are refcounted by moord: `mount` is called when the first
  running container needs the volume and `unmount` when the last one has stopped,
  so a driver does not need a count of its own (the `container_id` argument says
  which container triggered the call, for logs);
- `remove` is only called for a volume no container uses (moord checks its
  references first) and that is not mounted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

LOCAL_SCOPE = "local"


class InvalidVolumeOption(ValueError):
    """An option (`-o` of `volume create`, `volume-opt` of `--mount`) the driver refuses.

    The message is shown to the user as is (a 400), so say what is wrong and, when it
    helps, what would be right.
    """


class VolumeNotFoundError(LookupError):
    """The driver has no volume of that name (moord answers 404)."""


class VolumeDriverError(RuntimeError):
    """The driver failed to do what it was asked (a mount failed, a server is down): 500."""


@attrs.frozen
class VolumeInfo:
    """What a driver says about one of its volumes.

    `mountpoint` is the host path of the volume's data as the driver knows it now
    (for a driver that must mount before the path is usable it may be "" until then);
    `status` is free-form, shown by `docker volume inspect` under `Status`;
    `created` is None when the driver does not know (moord then uses its own record).
    """

    name: str
    mountpoint: str
    created: dt.datetime | None = None
    status: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class VolumeCapabilities:
    """What moord may assume about a driver's volumes.

    - `scope`: `local` (the volume exists on this host only); Docker's `global` means
      the same name is the same data on every host, which moord treats alike.
    - `populate`: moord may copy an image's content into a new, empty volume the first
      time it is mounted (Docker's behaviour for every driver). A driver whose volumes
      are not plain directories (a block device it formats itself, say) turns it off.
    """

    scope: str = LOCAL_SCOPE
    populate: bool = True


@runtime_checkable
class VolumeDriver(Protocol):
    """A volume driver. Members, and whether moord awaits them:

    - `name` (property): what `volume create -d`, `--mount volume-driver=` and inspect's
      `Driver` say.
    - `scope` (property): `local` or `global` (see `VolumeCapabilities.scope`).
    - `capabilities()` (sync): a `VolumeCapabilities`.
    - `validate(options)` (sync): check and normalise the options a volume would be
      created with; raise `InvalidVolumeOption` with a message for the user. moord calls
      it before anything is created, so a refused request leaves nothing behind.
    - `await create(name, options)`: make the volume; returns its `VolumeInfo`. The
      name has already passed Docker's rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
    - `await remove(name)`: delete the volume and its data. A volume the driver does
      not have raises `VolumeNotFoundError`.
    - `await mount(name, container_id)`: make the data available on the host; returns
      the host path moord bind-mounts into the container (refcounted by moord, see the
      module docstring).
    - `await unmount(name, container_id)`: the last container using it has stopped.
    - `await path(name)`: the host path of the data now ("" if it must be mounted first).
    - `await list()`: every volume the driver has (moord adopts those it has no record
      of at start-up, so data survives a lost state directory).
    - `await get(name)`: one volume's `VolumeInfo`, or `VolumeNotFoundError`.
    """

    @property
    def name(self) -> str: ...

    @property
    def scope(self) -> str: ...

    def capabilities(self) -> VolumeCapabilities: ...

    def validate(self, options: Mapping[str, str]) -> dict[str, str]: ...

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo: ...

    async def remove(self, name: str) -> None: ...

    async def mount(self, name: str, container_id: str) -> str: ...

    async def unmount(self, name: str, container_id: str) -> None: ...

    async def path(self, name: str) -> str: ...

    async def list(self) -> Sequence[VolumeInfo]: ...

    async def get(self, name: str) -> VolumeInfo: ...


__all__ = [
    "LOCAL_SCOPE",
    "InvalidVolumeOption",
    "VolumeCapabilities",
    "VolumeDriver",
    "VolumeDriverError",
    "VolumeInfo",
    "VolumeNotFoundError",
]
