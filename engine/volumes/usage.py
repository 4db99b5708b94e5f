"""The container side of the volume service: who uses and who has mounted each volume.

Two counts, kept in memory only (`Usage`); the container records rebuild them at
start-up (`ContainerVolumes.adopt`), so they are never stored twice:

- who *uses* each volume (every container, running or not, whose mounts name it):
  a used volume cannot be removed, and `dangling` means "used by none";
- who has each volume *mounted* (running containers): the driver's `mount` is called
  for the first and its `unmount` after the last, so drivers need no count of their own.

`ContainerVolumes` works through the `VolumeService` (its records, drivers and
per-name locks), in the order the container manager calls it:
`claim` (create) → `mount_for_start` (each start, after the root filesystem is
mounted) → `unmount_after_stop` (each exit) → `release` (remove).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from engine import ids
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound, SystemFailure
from engine.securejoin import resolve_in_root
from engine.volumes.binds import check_bind_source, make_bind_source, missing_paths
from engine.volumes.model import (
    DEFAULT_DRIVER,
    DEFAULT_PROPAGATION,
    MountPoint,
    MountRequest,
    MountType,
    Origin,
    SpecMount,
)
from engine.volumes.populate import populate_from_root

if TYPE_CHECKING:
    from engine.volumes.service import VolumeService

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Usage:
    """Container IDs by volume name: the users of each volume, and its mount holders."""

    _users: dict[str, set[str]] = attrs.field(factory=dict)
    _mounted: dict[str, set[str]] = attrs.field(factory=dict)

    def users(self, name: str) -> list[str]:
        """IDs of the containers whose mounts name this volume, sorted."""
        return sorted(self._users.get(name, ()))

    def in_use(self, name: str) -> bool:
        return bool(self._users.get(name))

    def add_user(self, name: str, container_id: str) -> None:
        self._users.setdefault(name, set()).add(container_id)

    def drop_user(self, name: str, container_id: str) -> None:
        self._users.get(name, set()).discard(container_id)

    def is_mounted(self, name: str) -> bool:
        """Mounted already, for some running container."""
        return bool(self._mounted.get(name))

    def add_mount(self, name: str, container_id: str) -> None:
        self._mounted.setdefault(name, set()).add(container_id)

    def drop_mount(self, name: str, container_id: str) -> bool:
        """Forget one holder; True if it was the last one (the volume should be unmounted)."""
        holders = self._mounted.get(name)
        if not holders or container_id not in holders:
            return False
        holders.discard(container_id)
        return not holders

    def forget(self, name: str) -> None:
        """The volume is gone."""
        self._users.pop(name, None)
        self._mounted.pop(name, None)


@attrs.define(eq=False)
class ContainerVolumes:
    """What containers do with volumes: claim, mount, unmount, release, and re-adopt."""

    service: VolumeService

    # create ---------------------------------------------------------------------------------
    async def claim(self, container_id: str,
                    requests: Sequence[MountRequest]) -> builtins.list[MountPoint]:
        """Make what `requests` need exist, and record that the container uses its volumes.

        Checks everything first (drivers known, options valid, `--mount` bind sources
        present), so a refused request creates nothing. Then, in order: named volumes that
        don't exist yet are created (with the request's driver, options and labels),
        anonymous volumes get a random 64-hex name, and a missing `-v` bind source
        directory is made (mode 0755, root's, as Docker does). On failure, what this call
        created is undone. The result goes into the container's record, in the order of
        `requests`.
        """
        service = self.service
        for request in requests:
            if request.type is MountType.VOLUME:
                existing = service.records.get(request.source) if request.source else None
                if existing is not None:
                    if request.driver and request.driver != existing.driver:
                        raise Conflict(
                            f"create {request.source}: volume name must be unique: a volume "
                            f"named {request.source} already exists with the {existing.driver} "
                            "driver")
                else:
                    try:
                        driver = service.driver(request.driver)
                    except NotFound as exc:
                        # a 404 from container create makes the docker CLI pull the image
                        raise InvalidParameter(exc.message) from None
                    service.validate_options(driver, request.source or "(anonymous)",
                                             request.driver_options)
        missing = await trio.to_thread.run_sync(
            missing_paths, [r.source for r in requests
                            if r.type is MountType.BIND and not r.create_source])
        if missing:
            raise InvalidParameter(
                f'invalid mount config for type "bind": bind source path does not exist: {missing[0]}')
        made: builtins.list[str] = []  # anonymous volumes this call created
        points: builtins.list[MountPoint] = []
        try:
            for request in requests:
                try:
                    points.append(await self._claim_one(container_id, request, made))
                except NotFound as exc:  # a plugin found to be missing only now
                    raise InvalidParameter(exc.message) from None
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._undo_claim(container_id, points, made)
            raise
        return points

    async def _claim_one(self, container_id: str, request: MountRequest,
                         made: builtins.list[str]) -> MountPoint:
        if request.type is MountType.BIND:
            if request.create_source:
                await trio.to_thread.run_sync(make_bind_source, request.source)
            return MountPoint(
                type=MountType.BIND.value, destination=request.target, source=request.source,
                mode=request.mode, rw=not request.read_only,
                propagation=request.propagation or DEFAULT_PROPAGATION,
                create_source=request.create_source, recursive=request.recursive)
        if request.type is MountType.TMPFS:
            return MountPoint(type=MountType.TMPFS.value, destination=request.target,
                              rw=not request.read_only, tmpfs_data=request.tmpfs_data,
                              listed=request.listed)
        service = self.service
        anonymous = not request.source
        name = request.source or ids.new_id()
        existing = service.records.get(name)
        if existing is not None:  # its driver, options and labels stay as they are
            driver, options = service.driver(existing.driver), dict(existing.options)
        else:
            driver = service.driver(request.driver)
            options = service.validate_options(driver, name, request.driver_options)
        volume, created = await service.get_or_create(
            name, driver, options, dict(request.labels), anonymous=anonymous,
            driver_asked=bool(request.driver))
        if created and anonymous:
            made.append(name)
        service.usage.add_user(name, container_id)
        mode = request.mode
        if not mode and volume.driver == DEFAULT_DRIVER and request.origin in (Origin.BINDS,
                                                                             Origin.MOUNTS):
            mode = "z"  # what Docker shows for a local volume given with -v or --mount
        return MountPoint(
            type=MountType.VOLUME.value, destination=request.target, source=volume.mountpoint,
            name=name, driver=volume.driver, mode=mode, rw=not request.read_only,
            anonymous=volume.anonymous, copy_data=not request.nocopy, subpath=request.subpath)

    async def _undo_claim(self, container_id: str, points: Sequence[MountPoint],
                          made: Sequence[str]) -> None:
        usage = self.service.usage
        for mp in points:
            if mp.name:
                usage.drop_user(mp.name, container_id)
        for name in made:
            if usage.in_use(name):
                continue
            try:
                await self.service.remove(name)
            except EngineError as exc:
                log.error("volume %s: undoing a failed create: %s", name, exc.message)

    # daemon start-up ------------------------------------------------------------------------
    def adopt(self, container_id: str, mount_points: Iterable[MountPoint], *,
              running: bool = False) -> None:
        """At daemon start-up: a container record's mounts (and whether it is running).

        Rebuilds the in-memory references `claim` and `mount_for_start` made before the
        restart. A running container's volumes stay mounted across a moord restart, so
        they count as mounted by it.
        """
        usage = self.service.usage
        for mp in mount_points:
            if mp.type != MountType.VOLUME.value or not mp.name:
                continue
            if mp.name not in self.service.records:
                log.warning("container %s uses volume %s, which has no record", container_id[:12],
                            mp.name)
            usage.add_user(mp.name, container_id)
            if running:
                usage.add_mount(mp.name, container_id)

    # start / stop ---------------------------------------------------------------------------
    async def mount_for_start(self, container_id: str, mount_points: Sequence[MountPoint], *,
                              rootfs: Path | None = None) -> builtins.list[SpecMount]:
        """The mounts for the container's config.json; volumes are mounted by their drivers.

        Call it on every start, after the container's root filesystem is mounted and
        before the spec is built, with `rootfs` = that mounted root: a volume mount point
        with `copy_data` whose volume is new and empty then gets the image's content at
        its destination (`populate`). A missing `-v` bind source is made again, as
        Docker makes it at start. If anything fails, what this call mounted is unmounted.
        """
        specs: builtins.list[SpecMount] = []
        mounted: builtins.list[MountPoint] = []
        try:
            for mp in mount_points:
                readonly = not mp.rw
                if mp.type == MountType.BIND.value:
                    await trio.to_thread.run_sync(check_bind_source, mp.source, mp.create_source)
                    specs.append(SpecMount("bind", mp.destination, mp.source, readonly=readonly,
                                           propagation=mp.propagation or DEFAULT_PROPAGATION,
                                           recursive=mp.recursive))
                elif mp.type == MountType.TMPFS.value:
                    specs.append(SpecMount("tmpfs", mp.destination, data=mp.tmpfs_data))
                elif mp.type == MountType.VOLUME.value:
                    path = await self._mount_volume(mp, container_id)
                    mounted.append(mp)
                    if rootfs is not None and mp.copy_data:
                        await populate_from_root(self.service, mp.name, rootfs, mp.destination)
                    source = path
                    if mp.subpath:
                        source = await trio.to_thread.run_sync(_subpath, path, mp.subpath, mp.name)
                    specs.append(SpecMount("bind", mp.destination, source, readonly=readonly,
                                           propagation=DEFAULT_PROPAGATION))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.unmount_after_stop(container_id, mounted)
            raise
        return specs

    async def _mount_volume(self, mp: MountPoint, container_id: str) -> str:
        service = self.service
        record = service.records.get(mp.name)
        if record is None:
            raise NotFound(f"get {mp.name}: no such volume")
        driver = service.driver(record.driver)
        async with service.lock(mp.name):
            if service.usage.is_mounted(mp.name):
                # mounted already for another running container: the same host path
                path = await service.call_driver(f"get {mp.name}", lambda: driver.path(mp.name))
            else:
                path = await service.call_driver(f"mount {mp.name}",
                                                 lambda: driver.mount(mp.name, container_id))
            service.usage.add_mount(mp.name, container_id)
        if not path:
            raise SystemFailure(f"mount {mp.name}: the {record.driver} driver gave no path")
        service.publish("mount", mp.name, {
            "container": container_id, "destination": mp.destination, "driver": record.driver,
            "propagation": mp.propagation, "read/write": "true" if mp.rw else "false"})
        return path

    async def unmount_after_stop(self, container_id: str, mount_points: Iterable[MountPoint]) -> None:
        """The container has stopped (or failed to start): unmount what only it had mounted.

        Idempotent, and it never raises: a driver that fails to unmount is logged (the
        next mount of that volume will find it mounted, which drivers tolerate).
        """
        service = self.service
        for name in dict.fromkeys(mp.name for mp in mount_points
                                  if mp.type == MountType.VOLUME.value and mp.name):
            async with service.lock(name):
                if not service.usage.drop_mount(name, container_id):
                    continue
                record = service.records.get(name)
                driver = service.drivers.get(record.driver) if record is not None else None
                if driver is None:
                    continue
                try:
                    await service.call_driver(f"unmount {name}",
                                              partial(driver.unmount, name, container_id))
                except EngineError as exc:
                    log.warning("volume %s: %s", name, exc.message)
                    continue
            service.publish("unmount", name, {"container": container_id,
                                              "driver": record.driver if record else ""})

    # removal --------------------------------------------------------------------------------
    async def release(self, container_id: str, mount_points: Sequence[MountPoint], *,
                      remove_anonymous: bool) -> builtins.list[str]:
        """The container is being removed: drop its references to its volumes.

        With `remove_anonymous` (`rm -v`, `--rm`), its anonymous volumes go too, unless
        another container still uses them (`--volumes-from`); named volumes never do.
        Never raises; returns the names of the volumes removed.
        """
        service = self.service
        await self.unmount_after_stop(container_id, mount_points)
        removed = []
        for mp in mount_points:
            if mp.type != MountType.VOLUME.value or not mp.name:
                continue
            service.usage.drop_user(mp.name, container_id)
            if not (remove_anonymous and mp.anonymous) or service.usage.in_use(mp.name):
                continue
            record = service.records.get(mp.name)
            if record is None or not record.anonymous or mp.name in removed:
                continue
            try:
                await service.remove(mp.name)
                removed.append(mp.name)
            except EngineError as exc:
                log.warning("volume %s stays after its container's removal: %s", mp.name,
                            exc.message)
        return removed


def _subpath(path: str, subpath: str, name: str) -> str:
    """The volume's `subpath`, resolved inside it (blocking: a worker thread's)."""
    resolved = resolve_in_root(Path(path), subpath)
    if not resolved.exists():
        raise InvalidParameter(f"cannot access path {resolved}: subpath {subpath!r} does not "
                               f"exist in volume {name}")
    return str(resolved)


__all__ = ["ContainerVolumes", "Usage"]
