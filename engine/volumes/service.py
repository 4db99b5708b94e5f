"""The volume subsystem's front: volumes for the API, and mounts for containers.

One `VolumeService` per daemon (`await VolumeService.open(...)`). It keeps moord's
record of every volume (crash-safe, one JSON document each under
`<data-root>/state/volumes/`), the drivers by name, and a lock per volume name:
operations on one volume are serialised by it; different volumes never wait for each
other. Every blocking step (mkdir, stat, copy, fsync) runs in a worker thread; drivers
do their own blocking work off the trio thread.

Here: the API operations (`create`, `get`, `list`, `inspect`, `remove`, `prune`).
The service is also the one handle the container manager holds; its container-side
methods are a thin front over the parts, which share its records and locks:

- `usage`: who uses and who has mounted each volume (`Usage`), and the container side
  (`ContainerVolumes`): `claim` (create) → `mount_for_start` (each start, after the
  root filesystem is mounted) → `unmount_after_stop` (each exit) → `release` (remove),
  and `adopt` at start-up;
- `populate`: filling a new, empty volume from the image at its first mount.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import attrs
import trio

from engine import ids
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound, SystemFailure
from engine.filtering import bool_filter, check_filters, labels_match
from engine.store import RecordStore
from engine.volumes import copy as content
from engine.volumes import populate as populating
from engine.volumes.model import ANONYMOUS_LABEL, DEFAULT_DRIVER, MountPoint, MountRequest, SpecMount, Volume
from engine.volumes.parse import validate_volume_name
from engine.volumes.usage import ContainerVolumes, Usage
from plugins import drivers_by_name
from plugins.volume_contract import (
    InvalidVolumeOption,
    VolumeDriver,
    VolumeDriverError,
    VolumeInfo,
    VolumeNotFoundError,
)

if TYPE_CHECKING:
    import pluggy

    from engine.events import EventBus

log = logging.getLogger(__name__)

T = TypeVar("T")

LIST_FILTERS = frozenset({"dangling", "name", "label", "driver"})
PRUNE_FILTERS = frozenset({"label", "label!", "all"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name_matches(name: str, pattern: str) -> bool:
    """Docker's `name` filter: a regular expression searched in the name."""
    if pattern == name:
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def volume_drivers_from(pm: pluggy.PluginManager, data_root: Path) -> dict[str, VolumeDriver]:
    """Every plugin's volume drivers by name; a later plugin's replaces an earlier one's."""
    return drivers_by_name("volume", pm.hook.moorage_volume_drivers(data_root=data_root))


@attrs.define(eq=False)
class VolumeService:
    data_root: Path
    drivers: MutableMapping[str, VolumeDriver]  # a table that may find drivers lazily
    store: RecordStore[Volume]
    records: dict[str, Volume] = attrs.field(factory=dict)
    events: EventBus | None = None
    usage: Usage = attrs.field(factory=Usage)
    _locks: dict[str, trio.Lock] = attrs.field(factory=dict)
    _containers: ContainerVolumes = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._containers = ContainerVolumes(self)

    @classmethod
    async def open(cls, data_root: Path, drivers: MutableMapping[str, VolumeDriver], *,
                   events: EventBus | None = None, durable: bool = True) -> VolumeService:
        """Load the volume records, then adopt what a driver has that moord has no record of.

        Adoption covers a crash between a driver's `create` and the record's save (and a
        lost state directory): the data is kept and shows up as a named volume; moord
        never copies image content into it. Records whose driver is not loaded stay
        (a plugin may come back); they can be removed with `force`.
        """
        store: RecordStore[Volume] = RecordStore(data_root / "state" / "volumes", Volume,
                                                 durable=durable)
        records = await trio.to_thread.run_sync(store.load_all)
        service = cls(data_root, drivers, store, records, events)
        listed: dict[str, Sequence[VolumeInfo]] = {}

        async def list_of(driver_name: str, driver: VolumeDriver) -> None:
            try:
                listed[driver_name] = await driver.list()
            except Exception as exc:
                log.warning("volume driver %s cannot list its volumes: %s", driver_name, exc)

        async with trio.open_nursery() as nursery:  # a slow driver delays no other's list
            for driver_name, driver in service.drivers.items():
                nursery.start_soon(list_of, driver_name, driver)
        for driver_name, driver in service.drivers.items():
            for info in listed.get(driver_name, ()):
                if info.name in records:
                    continue
                try:
                    validate_volume_name(info.name)
                except InvalidParameter:
                    log.warning("volume driver %s has a volume named %r, which moord cannot "
                                "use; leaving it alone", driver_name, info.name)
                    continue
                record = Volume(name=info.name, driver=driver_name, mountpoint=info.mountpoint,
                                created=info.created or _now(), scope=driver.scope, populated=True)
                await store.save(record.name, record)
                records[record.name] = record
                log.info("volume %s of driver %s had no record; adopted it", info.name, driver_name)
        for record in records.values():
            if record.driver not in service.drivers:
                log.warning("volume %s needs volume driver %r, which is not installed",
                            record.name, record.driver)
        return service

    # plumbing, shared with the parts (usage, populate) -------------------------------
    def lock(self, name: str) -> trio.Lock:
        """The lock of one volume name: its operations take turns; other names never wait."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = trio.Lock()
        return lock

    def driver(self, name: str) -> VolumeDriver:
        """The driver called `name` ("" is `local`), or Docker's 404 for an unknown plugin."""
        name = name or DEFAULT_DRIVER
        driver = self.drivers.get(name)
        if driver is None:
            raise NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')
        return driver

    def publish(self, action: str, name: str, attributes: Mapping[str, str]) -> None:
        """A `volume` event, when the service has an event bus."""
        if self.events is not None:
            self.events.publish("volume", action, name, attributes)

    async def call_driver(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Await a driver method; its errors become the engine's, prefixed with `what`."""
        try:
            return await fn()
        except EngineError:
            raise
        except InvalidVolumeOption as exc:
            raise InvalidParameter(f"{what}: {exc}") from None
        except VolumeNotFoundError:
            raise NotFound(f"{what}: no such volume") from None
        except VolumeDriverError as exc:
            raise SystemFailure(f"{what}: {exc}") from None
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.exception("volume driver failed: %s", what)
            raise SystemFailure(f"{what}: {exc.__class__.__name__}: {exc}") from None

    def validate_options(self, driver: VolumeDriver, name: str,
                         options: Mapping[str, str]) -> dict[str, str]:
        """The driver's checked options; refused ones are the API's 400."""
        try:
            return dict(driver.validate(options))
        except InvalidVolumeOption as exc:
            raise InvalidParameter(f"create {name}: {exc}") from None

    # volumes ------------------------------------------------------------------------
    def get(self, name: str) -> Volume:
        record = self.records.get(name)
        if record is None:
            raise NotFound(f"get {name}: no such volume")
        return record

    async def inspect(self, name: str) -> tuple[Volume, dict[str, str]]:
        """The record and the driver's `Status` (empty if the driver has none or fails)."""
        record = self.get(name)
        driver = self.drivers.get(record.driver)
        status: dict[str, str] = {}
        if driver is not None:
            try:
                info: VolumeInfo = await driver.get(name)
                status = dict(info.status)
            except Exception as exc:  # inspect still shows what moord knows
                log.warning("volume driver %s: get %s: %s", record.driver, name, exc)
        return record, status

    def users(self, name: str) -> list[str]:
        """IDs of the containers whose mounts name this volume, sorted."""
        return self.usage.users(name)

    def in_use(self, name: str) -> bool:
        return self.usage.in_use(name)

    async def create(self, name: str = "", *, driver: str = "", options: Mapping[str, str] | None = None,
                     labels: Mapping[str, str] | None = None) -> Volume:
        """`POST /volumes/create`: a new volume, or the existing one of that name.

        Like Docker, creating a volume that exists returns it unchanged (its options and
        labels stay), unless another driver was asked for (409). No name makes an
        anonymous volume with a random 64-hex name.
        """
        anonymous = not name
        if anonymous:
            name = ids.new_id()
        validate_volume_name(name)
        chosen = self.driver(driver)
        checked = self.validate_options(chosen, name, options or {})
        volume, _ = await self.get_or_create(name, chosen, checked, dict(labels or {}),
                                              anonymous=anonymous, driver_asked=bool(driver))
        return volume

    async def get_or_create(self, name: str, driver: VolumeDriver, options: dict[str, str],
                            labels: dict[str, str], *, anonymous: bool,
                            driver_asked: bool) -> tuple[Volume, bool]:
        """The volume `name`, made by `driver` first if it has no record; True if made.

        The driver creates before the record is saved (a crash leaves data that `open`
        adopts); a record that cannot be saved undoes the driver's create.
        """
        async with self.lock(name):
            existing = self.records.get(name)
            if existing is not None:
                if driver_asked and existing.driver != driver.name:
                    raise Conflict(
                        f"create {name}: volume name must be unique: a volume named {name} "
                        f"already exists with the {existing.driver} driver")
                return existing, False
            if anonymous:
                labels = {**labels, ANONYMOUS_LABEL: ""}
            info = await self.call_driver(f"create {name}", lambda: driver.create(name, options))
            record = Volume(name=name, driver=driver.name, mountpoint=info.mountpoint,
                            created=info.created or _now(), labels=labels, options=options,
                            scope=driver.scope, anonymous=anonymous)
            try:
                await self.store.save(name, record)
            except BaseException:
                with trio.CancelScope(shield=True):
                    try:
                        await driver.remove(name)
                    except Exception as exc:
                        log.error("volume %s: undoing a create whose record failed: %s", name, exc)
                raise
            self.records[name] = record
        self.publish("create", name, {"driver": driver.name})
        return record, True

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> builtins.list[Volume]:
        """`GET /volumes`: filters `dangling`, `name` (a pattern), `label`, `driver`."""
        filters = filters or {}
        check_filters(filters, LIST_FILTERS)
        dangling = bool_filter(filters, "dangling")
        names = filters.get("name", [])
        drivers = set(filters.get("driver", []))
        found = []
        for volume in sorted(self.records.values(), key=lambda v: v.name):
            if dangling is not None and dangling == self.in_use(volume.name):
                continue
            if names and not any(_name_matches(volume.name, n) for n in names):
                continue
            if drivers and volume.driver not in drivers:
                continue
            if not labels_match(volume.labels, filters):
                continue
            found.append(volume)
        return found

    async def remove(self, name: str, *, force: bool = False) -> None:
        """`DELETE /volumes/NAME`: refused while any container uses it, `force` or not.

        `force` makes a missing volume not an error and removes moord's record even when
        the driver fails or is gone (Docker's purge).
        """
        async with self.lock(name):
            record = self.records.get(name)
            if record is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            driver = self.drivers.get(record.driver)
            if driver is None:
                if not force:
                    raise SystemFailure(
                        f"remove {name}: volume driver {record.driver!r} is not installed; "
                        "use force to forget the volume")
            else:
                try:
                    await self.call_driver(f"remove {name}", lambda: driver.remove(name))
                except NotFound:
                    pass  # already gone: forget it
                except EngineError:
                    if not force:
                        raise
                    log.warning("volume %s: the driver failed to remove it; forgetting it (force)", name)
            await self.store.delete(name)
            del self.records[name]
            self.usage.forget(name)
        self.publish("destroy", name, {"driver": record.driver})

    async def prune(self, filters: Mapping[str, Sequence[str]] | None = None
                    ) -> tuple[builtins.list[str], int]:
        """`POST /volumes/prune`: unused anonymous volumes (all unused ones with `all=true`).

        Returns the names removed and the bytes their data took. A volume that cannot be
        removed is logged and skipped.
        """
        filters = filters or {}
        check_filters(filters, PRUNE_FILTERS)
        everything = bool_filter(filters, "all") or False
        removed: builtins.list[str] = []
        reclaimed = 0
        for volume in list(self.records.values()):
            if self.in_use(volume.name) or not (everything or volume.anonymous):
                continue
            if not labels_match(volume.labels, filters):
                continue
            size = await self._size(volume)
            try:
                await self.remove(volume.name)
            except EngineError as exc:
                log.warning("prune: volume %s stays: %s", volume.name, exc.message)
                continue
            removed.append(volume.name)
            reclaimed += size
        return removed, reclaimed

    async def _size(self, volume: Volume) -> int:
        driver = self.drivers.get(volume.driver)
        try:
            path = await driver.path(volume.name) if driver is not None else volume.mountpoint
        except Exception:
            path = volume.mountpoint
        if not path:
            return 0

        def measure() -> int:
            try:
                return content.tree_size(Path(path))
            except OSError:
                return 0

        return await trio.to_thread.run_sync(measure)

    # the container side (usage.ContainerVolumes) ----------------------------------------
    async def claim(self, container_id: str,
                    requests: Sequence[MountRequest]) -> builtins.list[MountPoint]:
        """Create what the mount requests need; the container now uses its volumes."""
        return await self._containers.claim(container_id, requests)

    def adopt(self, container_id: str, mount_points: Iterable[MountPoint], *,
              running: bool = False) -> None:
        """At daemon start-up: count a container record's volumes as used (and mounted)."""
        self._containers.adopt(container_id, mount_points, running=running)

    async def mount_for_start(self, container_id: str, mount_points: Sequence[MountPoint], *,
                              rootfs: Path | None = None) -> builtins.list[SpecMount]:
        """Mount the container's volumes; the mounts for its config.json."""
        return await self._containers.mount_for_start(container_id, mount_points, rootfs=rootfs)

    async def unmount_after_stop(self, container_id: str, mount_points: Iterable[MountPoint]) -> None:
        """Unmount what only this stopped container had mounted; never raises."""
        await self._containers.unmount_after_stop(container_id, mount_points)

    async def release(self, container_id: str, mount_points: Sequence[MountPoint], *,
                      remove_anonymous: bool) -> builtins.list[str]:
        """The container is being removed: drop its uses (and its anonymous volumes)."""
        return await self._containers.release(container_id, mount_points,
                                              remove_anonymous=remove_anonymous)

    # populate (populate.py) --------------------------------------------------------------
    async def populate_from_root(self, volume_name: str, rootfs: Path, destination: str) -> bool:
        """`populate` from `destination` inside a mounted container root (resolved in scope)."""
        return await populating.populate_from_root(self, volume_name, rootfs, destination)

    async def populate(self, volume_name: str, source_dir: Path) -> bool:
        """Copy an image directory into the volume if the volume is new and empty."""
        return await populating.populate(self, volume_name, source_dir)

__all__ = [
    "LIST_FILTERS",
    "PRUNE_FILTERS",
    "VolumeService",
    "volume_drivers_from",
]
