"""The volume subsystem: volumes for the API, and mounts for containers.

One `VolumeService` per daemon (`await VolumeService.open(...)`). It keeps moord's
record of every volume (crash-safe, one JSON document each under
`<data-root>/state/volumes/`), the drivers by name, and two things in memory that
the container records rebuild at start-up (`adopt`):

- who *uses* each volume (every container, running or not, whose mounts name it):
  a used volume cannot be removed, and `dangling` means "used by none";
- who has each volume *mounted* (running containers): the driver's `mount` is called
  for the first and its `unmount` after the last, so drivers need no count of their own.

Operations on one volume name are serialised by a per-name lock; different volumes
never wait for each other. Every blocking step (mkdir, stat, copy, fsync) runs in a
worker thread; drivers do their own blocking work off the trio thread.

Container side, in the order the container manager calls it:
`claim` (create) → `mount_for_start` (each start, after the root filesystem is
mounted) → `unmount_after_stop` (each exit) → `release` (remove).
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import attrs
import trio

from engine import ids
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound, SystemFailure
from engine.filtering import bool_filter, check_filters, labels_match
from engine.securejoin import ScopeError, resolve_in_root
from engine.store import RecordStore
from engine.volumes import copy as content
from engine.volumes.model import (
    ANONYMOUS_LABEL,
    DEFAULT_DRIVER,
    DEFAULT_PROPAGATION,
    MountPoint,
    MountRequest,
    MountType,
    Origin,
    SpecMount,
    Volume,
)
from engine.volumes.parse import validate_volume_name
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
# options that, when a volume has them, say how its root must be owned: they win over
# the ownership of the image directory copied in (the local driver's uid/gid/mode)
OWNERSHIP_OPTIONS = frozenset({"uid", "gid", "mode"})


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
    drivers: dict[str, VolumeDriver]
    store: RecordStore[Volume]
    records: dict[str, Volume] = attrs.field(factory=dict)
    events: EventBus | None = None
    _users: dict[str, set[str]] = attrs.field(factory=dict)
    _mounted: dict[str, set[str]] = attrs.field(factory=dict)
    _locks: dict[str, trio.Lock] = attrs.field(factory=dict)

    @classmethod
    async def open(cls, data_root: Path, drivers: Mapping[str, VolumeDriver], *,
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
        service = cls(data_root, dict(drivers), store, records, events)
        for driver_name, driver in service.drivers.items():
            try:
                infos = await driver.list()
            except Exception as exc:
                log.warning("volume driver %s cannot list its volumes: %s", driver_name, exc)
                continue
            for info in infos:
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

    # plumbing -----------------------------------------------------------------------
    def _lock(self, name: str) -> trio.Lock:
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

    def _publish(self, action: str, name: str, attributes: Mapping[str, str]) -> None:
        if self.events is not None:
            self.events.publish("volume", action, name, attributes)

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
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

    def _validate_options(self, driver: VolumeDriver, name: str,
                          options: Mapping[str, str]) -> dict[str, str]:
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
        return sorted(self._users.get(name, ()))

    def in_use(self, name: str) -> bool:
        return bool(self._users.get(name))

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
        checked = self._validate_options(chosen, name, options or {})
        volume, _ = await self._get_or_create(name, chosen, checked, dict(labels or {}),
                                              anonymous=anonymous, driver_asked=bool(driver))
        return volume

    async def _get_or_create(self, name: str, driver: VolumeDriver, options: dict[str, str],
                             labels: dict[str, str], *, anonymous: bool,
                             driver_asked: bool) -> tuple[Volume, bool]:
        async with self._lock(name):
            existing = self.records.get(name)
            if existing is not None:
                if driver_asked and existing.driver != driver.name:
                    raise Conflict(
                        f"create {name}: volume name must be unique: a volume named {name} "
                        f"already exists with the {existing.driver} driver")
                return existing, False
            if anonymous:
                labels = {**labels, ANONYMOUS_LABEL: ""}
            info = await self._call(f"create {name}", lambda: driver.create(name, options))
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
        self._publish("create", name, {"driver": driver.name})
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
        async with self._lock(name):
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
                    await self._call(f"remove {name}", lambda: driver.remove(name))
                except NotFound:
                    pass  # already gone: forget it
                except EngineError:
                    if not force:
                        raise
                    log.warning("volume %s: the driver failed to remove it; forgetting it (force)", name)
            await self.store.delete(name)
            del self.records[name]
            self._mounted.pop(name, None)
        self._publish("destroy", name, {"driver": record.driver})

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

    # containers: create -----------------------------------------------------------------
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
        for request in requests:
            if request.type is MountType.VOLUME:
                existing = self.records.get(request.source) if request.source else None
                if existing is not None:
                    if request.driver and request.driver != existing.driver:
                        raise Conflict(
                            f"create {request.source}: volume name must be unique: a volume "
                            f"named {request.source} already exists with the {existing.driver} "
                            "driver")
                else:
                    try:
                        driver = self.driver(request.driver)
                    except NotFound as exc:
                        # a 404 from container create makes the docker CLI pull the image
                        raise InvalidParameter(exc.message) from None
                    self._validate_options(driver, request.source or "(anonymous)",
                                           request.driver_options)
        missing = await trio.to_thread.run_sync(
            _missing_paths, [r.source for r in requests
                             if r.type is MountType.BIND and not r.create_source])
        if missing:
            raise InvalidParameter(
                f'invalid mount config for type "bind": bind source path does not exist: {missing[0]}')
        made: builtins.list[str] = []  # anonymous volumes this call created
        points: builtins.list[MountPoint] = []
        try:
            for request in requests:
                points.append(await self._claim_one(container_id, request, made))
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._undo_claim(container_id, points, made)
            raise
        return points

    async def _claim_one(self, container_id: str, request: MountRequest,
                         made: builtins.list[str]) -> MountPoint:
        if request.type is MountType.BIND:
            if request.create_source:
                await trio.to_thread.run_sync(_make_bind_source, request.source)
            return MountPoint(
                type=MountType.BIND.value, destination=request.target, source=request.source,
                mode=request.mode, rw=not request.read_only,
                propagation=request.propagation or DEFAULT_PROPAGATION,
                create_source=request.create_source, recursive=request.recursive)
        if request.type is MountType.TMPFS:
            return MountPoint(type=MountType.TMPFS.value, destination=request.target,
                              rw=not request.read_only, tmpfs_data=request.tmpfs_data,
                              listed=request.listed)
        anonymous = not request.source
        name = request.source or ids.new_id()
        existing = self.records.get(name)
        if existing is not None:  # its driver, options and labels stay as they are
            driver, options = self.driver(existing.driver), dict(existing.options)
        else:
            driver = self.driver(request.driver)
            options = self._validate_options(driver, name, request.driver_options)
        volume, created = await self._get_or_create(
            name, driver, options, dict(request.labels), anonymous=anonymous,
            driver_asked=bool(request.driver))
        if created and anonymous:
            made.append(name)
        self._users.setdefault(name, set()).add(container_id)
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
        for mp in points:
            if mp.name:
                self._users.get(mp.name, set()).discard(container_id)
        for name in made:
            if self.in_use(name):
                continue
            try:
                await self.remove(name)
            except EngineError as exc:
                log.error("volume %s: undoing a failed create: %s", name, exc.message)

    def adopt(self, container_id: str, mount_points: Iterable[MountPoint], *,
              running: bool = False) -> None:
        """At daemon start-up: a container record's mounts (and whether it is running).

        Rebuilds the in-memory references `claim` and `mount_for_start` made before the
        restart. A running container's volumes stay mounted across a moord restart, so
        they count as mounted by it.
        """
        for mp in mount_points:
            if mp.type != MountType.VOLUME.value or not mp.name:
                continue
            if mp.name not in self.records:
                log.warning("container %s uses volume %s, which has no record", container_id[:12],
                            mp.name)
            self._users.setdefault(mp.name, set()).add(container_id)
            if running:
                self._mounted.setdefault(mp.name, set()).add(container_id)

    # containers: start / stop --------------------------------------------------------------
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
                    await trio.to_thread.run_sync(_check_bind_source, mp.source, mp.create_source)
                    specs.append(SpecMount("bind", mp.destination, mp.source, readonly=readonly,
                                           propagation=mp.propagation or DEFAULT_PROPAGATION,
                                           recursive=mp.recursive))
                elif mp.type == MountType.TMPFS.value:
                    specs.append(SpecMount("tmpfs", mp.destination, data=mp.tmpfs_data))
                elif mp.type == MountType.VOLUME.value:
                    path = await self._mount_volume(mp, container_id)
                    mounted.append(mp)
                    if rootfs is not None and mp.copy_data:
                        await self.populate_from_root(mp.name, rootfs, mp.destination)
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
        record = self.records.get(mp.name)
        if record is None:
            raise NotFound(f"get {mp.name}: no such volume")
        driver = self.driver(record.driver)
        async with self._lock(mp.name):
            holders = self._mounted.setdefault(mp.name, set())
            if holders:
                # mounted already for another running container: the same host path
                path = await self._call(f"get {mp.name}", lambda: driver.path(mp.name))
            else:
                path = await self._call(f"mount {mp.name}",
                                        lambda: driver.mount(mp.name, container_id))
            holders.add(container_id)
        if not path:
            raise SystemFailure(f"mount {mp.name}: the {record.driver} driver gave no path")
        self._publish("mount", mp.name, {
            "container": container_id, "destination": mp.destination, "driver": record.driver,
            "propagation": mp.propagation, "read/write": "true" if mp.rw else "false"})
        return path

    async def unmount_after_stop(self, container_id: str, mount_points: Iterable[MountPoint]) -> None:
        """The container has stopped (or failed to start): unmount what only it had mounted.

        Idempotent, and it never raises: a driver that fails to unmount is logged (the
        next mount of that volume will find it mounted, which drivers tolerate).
        """
        for name in dict.fromkeys(mp.name for mp in mount_points
                                  if mp.type == MountType.VOLUME.value and mp.name):
            async with self._lock(name):
                holders = self._mounted.get(name)
                if not holders or container_id not in holders:
                    continue
                holders.discard(container_id)
                if holders:
                    continue
                record = self.records.get(name)
                driver = self.drivers.get(record.driver) if record is not None else None
                if driver is None:
                    continue
                try:
                    await self._call(f"unmount {name}", partial(driver.unmount, name, container_id))
                except EngineError as exc:
                    log.warning("volume %s: %s", name, exc.message)
                    continue
            self._publish("unmount", name, {"container": container_id,
                                            "driver": record.driver if record else ""})

    async def release(self, container_id: str, mount_points: Sequence[MountPoint], *,
                      remove_anonymous: bool) -> builtins.list[str]:
        """The container is being removed: drop its references to its volumes.

        With `remove_anonymous` (`rm -v`, `--rm`), its anonymous volumes go too, unless
        another container still uses them (`--volumes-from`); named volumes never do.
        Never raises; returns the names of the volumes removed.
        """
        await self.unmount_after_stop(container_id, mount_points)
        removed = []
        for mp in mount_points:
            if mp.type != MountType.VOLUME.value or not mp.name:
                continue
            users = self._users.get(mp.name)
            if users is not None:
                users.discard(container_id)
            if not (remove_anonymous and mp.anonymous) or self.in_use(mp.name):
                continue
            record = self.records.get(mp.name)
            if record is None or not record.anonymous or mp.name in removed:
                continue
            try:
                await self.remove(mp.name)
                removed.append(mp.name)
            except EngineError as exc:
                log.warning("volume %s stays after its container's removal: %s", mp.name,
                            exc.message)
        return removed

    # populate -------------------------------------------------------------------------------
    async def populate_from_root(self, volume_name: str, rootfs: Path, destination: str) -> bool:
        """`populate` from `destination` inside a mounted container root (resolved in scope)."""
        try:
            source = await trio.to_thread.run_sync(resolve_in_root, rootfs, destination)
        except ScopeError as exc:
            log.warning("volume %s: not copying image content: %s", volume_name, exc)
            return False
        return await self.populate(volume_name, source)

    async def populate(self, volume_name: str, source_dir: Path) -> bool:
        """Copy `source_dir` (an image directory) into the volume if the volume is new and empty.

        Docker's rule: the first time a volume is mounted where the image has a
        directory, and the volume is empty, it gets that directory's content, owners,
        modes and the directory's own owner and mode (a volume-root `uid`/`gid`/`mode`
        option wins over the latter). Once that has happened, or once the volume was found
        holding data, moord never copies into it again (`Volume.populated`), so data a
        container deleted does not come back. The volume must be mounted (its driver's
        `path` must be usable). `source_dir` must already be resolved safely inside the
        container's root (`populate_from_root` does that). Returns True if anything was
        copied.
        """
        record = self.get(volume_name)
        driver = self.driver(record.driver)
        if record.populated or not driver.capabilities().populate:
            return False
        async with self._lock(volume_name):
            path = await self._call(f"get {volume_name}", lambda: driver.path(volume_name))
            keep_root = bool(OWNERSHIP_OPTIONS & set(record.options))
            outcome = await trio.to_thread.run_sync(_populate_sync, source_dir, Path(path),
                                                    keep_root)
            if outcome is None:
                return False
            record.populated = True
            await self.store.save(volume_name, record)
        if outcome:
            log.debug("volume %s: copied the image's content from %s", volume_name, source_dir)
        return outcome


# blocking helpers (worker threads) ------------------------------------------------------------


def _missing_paths(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if not os.path.lexists(p)]


def _make_bind_source(source: str) -> None:
    if os.path.lexists(source):
        return
    try:
        os.makedirs(source, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise SystemFailure(
            f"error while creating mount source path '{source}': {exc.strerror or exc}") from None


def _check_bind_source(source: str, create: bool) -> None:
    if create:
        _make_bind_source(source)
    elif not os.path.lexists(source):
        raise InvalidParameter(
            f'invalid mount config for type "bind": bind source path does not exist: {source}')


def _subpath(path: str, subpath: str, name: str) -> str:
    resolved = resolve_in_root(Path(path), subpath)
    if not resolved.exists():
        raise InvalidParameter(f"cannot access path {resolved}: subpath {subpath!r} does not "
                               f"exist in volume {name}")
    return str(resolved)


def _populate_sync(source: Path, destination: Path, keep_root: bool) -> bool | None:
    """True: copied; False: the volume had data (never copy again); None: nothing to copy."""
    if not destination.is_dir():
        return None
    if not content.is_empty_dir(destination):
        return False
    if not source.is_dir() or source.is_symlink():
        return None
    content.copy_tree(source, destination, root_metadata=not keep_root)
    return True


__all__ = [
    "LIST_FILTERS",
    "PRUNE_FILTERS",
    "VolumeService",
    "volume_drivers_from",
]
