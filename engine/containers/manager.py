"""The container lifecycle: create, start, stop, kill, restart, remove, wait, rename.

One `ContainerManager` per daemon holds the table of records, each record's in-memory
companions (`Live`: its lock, waiters and timers) and the runtime that runs containers
(`engine.runtime.interface.ContainerRuntime`). Each live container has one monitor task
(in the manager's nursery) that waits on its runtime's exit watch and handles the exit.
User operations on one container are serialised by its `op_lock`; exit handling does not
take that lock (a stop holds it while waiting for the exit). Every state change is
persisted before it is announced, so a `kill -9` of moord never loses one a client saw.

This class is the API the handlers call; the steps live in modules that take it:
`create` (a request to a record), `starting`, `companions` (what runs beside a running
container), `supervision` (exits, the restart policy, health-on-failure), `stopping`
(stop, kill), `removal`, and `recovery` (reconciling the records at start-up).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from engine.containers import (
    companions,
    create,
    links,
    names,
    netshare,
    policy,
    removal,
    restart_loop,
    starting,
    stopping,
    supervision,
)
from engine.containers.attach import AttachHub
from engine.containers.bundle import BundleMaker
from engine.containers.layout import ContainerPaths
from engine.containers.live import Live, WaitResult
from engine.containers.model import Container, ContainerSpec, HostSpec, RestartPolicy, Status
from engine.containers.resources import ResourceUpdate, updated_host
from engine.containers.signals import parse_signal
from engine.containers.table import ContainerTable
from engine.errors import Conflict, InvalidParameter, SystemFailure
from engine.events import EventBus
from engine.metrics.catalog import METRICS
from engine.runtime.interface import ContainerRuntime, ExitWatch, RuntimeTarget
from engine.runtime.spec import limit_resources
from plugins.contracts import LogDriver

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.containers.model import StopReason
    from engine.images.store import ImageStore
    from engine.networks.model import (
        Attachment,
        ContainerInfo,
        ContainerNetworking,
        LinkedContainer,
    )
    from engine.networks.service import NetworkService
    from engine.runtime.host import HostProfile
    from engine.volumes.service import VolumeService

log = logging.getLogger(__name__)

#: Lifecycle events moord's own log records too, one line each with the container's id,
#: name and the event as fields (the journal indexes them); exec and attach ones stay out.
LOGGED_EVENTS = frozenset({"create", "start", "die", "oom", "kill", "stop", "restart", "pause",
                           "unpause", "destroy", "health_status", "update", "rename"})

__all__ = ["ContainerManager", "WaitResult", "parse_signal"]


@attrs.define(eq=False)
class ContainerManager:
    config: DaemonConfig
    host: HostProfile
    images: ImageStore
    table: ContainerTable
    bundles: BundleMaker
    runtime: ContainerRuntime
    events: EventBus = attrs.field(factory=EventBus)
    log_drivers: Mapping[str, LogDriver] = attrs.field(factory=dict)
    attach: AttachHub = attrs.field(factory=AttachHub)
    live: dict[str, Live] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    shutting_down: bool = False
    volumes: VolumeService | None = None
    networks: NetworkService | None = None
    #: containers whose policy restart the start-up pass makes, after their dependencies
    restarts_held: set[str] = attrs.field(factory=set)

    @classmethod
    def open(cls, config: DaemonConfig, host: HostProfile, images: ImageStore,
             events: EventBus | None = None,
             log_drivers: Mapping[str, LogDriver] | None = None) -> ContainerManager:
        """Load every container record (blocking; start-up only)."""
        from engine.runtime.conmon_runtime import ConmonRuntime
        from engine.store import RecordStore

        store: RecordStore[Container] = RecordStore(
            config.data_root / "state" / "containers", Container, durable=config.durable_store)
        table = ContainerTable(store)
        table.load()
        bundles = BundleMaker(config, host, images)
        runtime = ConmonRuntime(host, config.exec_root, config.cgroup_parent)
        return cls(config, host, images, table, bundles, runtime, events or EventBus(),
                   dict(log_drivers or {}))

    # plumbing -----------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the monitors' nursery; reconcile records with reality first."""
        from engine.containers.export import clear_stale_exports
        from engine.containers.recovery import recover

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await trio.to_thread.run_sync(clear_stale_exports, self.config.exec_root)
            await recover(self)
            task_status.started()
            await trio.sleep_forever()

    def live_of(self, c: Container) -> Live:
        live = self.live.get(c.id)
        if live is None:
            live = self.live[c.id] = Live(
                backoff=restart_loop.backoff_for(self.config, c.spec.labels))
        return live

    def reconfigure(self, config: DaemonConfig) -> None:
        """Apply reloadable settings (SIGHUP): the restart back-off (labels still win)."""
        self.config = config
        for cid, live in self.live.items():
            c = self.table.by_id.get(cid)
            restart_loop.retune(live.backoff, config, c.spec.labels if c is not None else {})

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    def paths(self, c: Container | str) -> ContainerPaths:
        cid = c if isinstance(c, str) else c.id
        return ContainerPaths.under(self.config.data_root, cid)

    @property
    def containers_dir(self) -> Path:
        """Where every container's directory is (`paths(c).root`)."""
        return ContainerPaths.parent_under(self.config.data_root)

    def cgroup_path(self, c: Container) -> str:
        return f"/{self.config.cgroup_parent.strip('/')}/{c.id}"

    def target(self, c: Container) -> RuntimeTarget:
        """`c` as the runtime knows it."""
        paths = self.paths(c)
        return RuntimeTarget(id=c.id, runtime=c.runtime, bundle=paths.bundle,
                             userdata=paths.userdata, cgroup=self.cgroup_path(c))

    @property
    def boot_id(self) -> str:
        return self.host.boot_id

    def get(self, ref: str) -> Container:
        return self.table.lookup(ref)

    def all(self) -> list[Container]:
        return sorted(self.table, key=lambda c: c.created, reverse=True)

    def records(self) -> list[Container]:
        """Every record, in no particular order."""
        return list(self.table)

    def recorded(self, container_id: str) -> bool:
        """Is there (still) a record of this container?"""
        return container_id in self.table.by_id

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        """Containers made from `image_id`: (id, running)."""
        return [(c.id, c.state.is_live) for c in self.table if c.image_id == image_id]

    async def save(self, c: Container) -> None:
        await self.table.save(c)

    def publish(self, c: Container, action: str, **extra: str) -> None:
        """A container event, with Docker's attributes: image, name and the labels."""
        attributes = dict(c.spec.labels)
        attributes.update(image=c.spec.image, name=c.name)
        attributes.update(extra)
        self.events.publish("container", action, c.id, attributes)
        base = action.split(":", 1)[0]
        if base in LOGGED_EVENTS:
            details = "".join(f" {k}={v}" for k, v in extra.items())
            log.info("container %s (%s): %s%s", c.short_id, c.name, action, details,
                     extra=c.log_fields(base))

    def log_driver(self, c: Container) -> LogDriver:
        driver = self.log_drivers.get(c.host.log_config.type)
        if driver is None:
            raise InvalidParameter(
                f"logger: no log driver named '{c.host.log_config.type}' is registered")
        return driver

    async def unmount_rootfs(self, c: Container) -> None:
        await self.bundles.unmount(self.paths(c))

    # create, start ----------------------------------------------------------------
    async def create(self, name: str | None, spec: ContainerSpec, host: HostSpec,
                     endpoints: Any = None, *, build_step: bool = False,
                     ) -> tuple[Container, list[str]]:
        with METRICS.container_actions.time(action="create"):
            return await create.create_container(self, name, spec, host, endpoints,
                                                 build_step=build_step)

    async def start(self, c: Container) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            if c.state.status is Status.RESTARTING:
                live.cancel_pending_restart()  # a user's start doesn't wait for the back-off
            with METRICS.container_actions.time(action="start"):
                await starting.start_locked(self, c, reset_restart_state=True)

    def start_run_tasks(self, c: Container) -> None:
        """Health checks, log rotation and log shipping, for as long as this run lasts."""
        companions.start_run_tasks(self, c)

    def ship_leftover_logs(self, c: Container) -> None:
        """The lines a container logged after moord went away and before it ended."""
        self.spawn(companions.ship_leftover, self, c)

    # exits --------------------------------------------------------------------------
    def watch_exit(self, c: Container, watch: ExitWatch | None) -> None:
        """Handle `c`'s exit when its monitor reports it (None: it already has)."""
        self.spawn(supervision.monitor, self, c, watch)

    async def record_exit(self, c: Container, *, reason: StopReason | None = None,
                          fallback_code: int = 255) -> None:
        """Record an exit the runtime reported (or that recovery inferred)."""
        await supervision.handle_exit(self, c, reason=reason, fallback_code=fallback_code)

    def health_failed(self, c: Container) -> None:
        """The health check just declared `c` unhealthy: act as `--health-on-failure` says."""
        supervision.health_failed(self, c)

    async def start_by_policy(self, c: Container) -> None:
        """Start a container whose restart policy says so at daemon start."""
        await supervision.start_by_policy(self, c)

    # stop, kill, restart --------------------------------------------------------------
    async def stop(self, c: Container, *, grace: int | None = None, signal: str | None = None) -> None:
        await stopping.stop(self, c, grace=grace, signal=signal)

    async def kill(self, c: Container, signal: str | None) -> None:
        await stopping.kill(self, c, signal)

    async def restart(self, c: Container, *, grace: int | None = None, signal: str | None = None) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            live.manual_restart = True
            try:
                live.cancel_pending_restart()
                if c.state.is_live:
                    await stopping.stop_locked(self, c, grace=grace, signal=signal)
                if c.state.status is Status.RESTARTING:
                    c.state.status = Status.EXITED
                await starting.start_locked(self, c, reset_restart_state=True)
            finally:
                live.manual_restart = False
        self.publish(c, "restart")

    async def stop_all(self) -> None:
        """Stop every live container in parallel, each with its own grace period."""
        await stopping.stop_all(self)

    # update -----------------------------------------------------------------------------
    async def update_restart_policy(self, c: Container, new: RestartPolicy) -> None:
        """`docker update --restart`: takes effect at the next exit."""
        policy.check_restart_policy(new)
        if c.host.auto_remove and new.name != "no":
            raise InvalidParameter(
                "Restart policy cannot be updated because AutoRemove is enabled for the container")
        async with self.live_of(c).op_lock:
            c.host.restart_policy = new
            await self.table.save(c)
        self.publish(c, "update")

    async def update_resources(self, c: Container, update: ResourceUpdate) -> None:
        """`docker update` of limits: recorded for later starts, and applied by the
        runtime now if the container has processes (running or paused)."""
        async with self.live_of(c).op_lock:
            try:
                new = updated_host(c.host, update, len(os.sched_getaffinity(0)))
            except Conflict as exc:
                raise Conflict(f"Cannot update container {c.id}: {exc.message}") from None
            if c.state.is_live:
                resources = limit_resources(new)
                if (new.pids_limit or 0) <= 0:  # unlimited: crun 1.8 would write -1
                    resources.pop("pids", None)
                unlimited_pids = update.pids_limit is not None and update.pids_limit <= 0
                try:
                    await self.runtime.update(self.target(c), resources,
                                              unlimited_pids=unlimited_pids)
                except SystemFailure as exc:
                    raise SystemFailure(f"Cannot update container {c.id}: {exc.message}") from None
            c.host = new
            await self.table.save(c)
        self.publish(c, "update")

    # pause / resize -------------------------------------------------------------
    async def pause(self, c: Container) -> None:
        async with self.live_of(c).op_lock:
            if c.state.status is Status.PAUSED:
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status is not Status.RUNNING:
                raise Conflict(f"Container {c.id} is not running")
            await self.runtime.pause(self.target(c))
            c.state.status = Status.PAUSED
            try:
                await self.table.save(c)
            except BaseException:
                # not on record (a full disk): then not paused either
                with trio.CancelScope(shield=True):
                    await self.runtime.resume(self.target(c))
                    c.state.status = Status.RUNNING
                raise
        self.publish(c, "pause")

    async def unpause(self, c: Container) -> None:
        async with self.live_of(c).op_lock:
            if c.state.status is not Status.PAUSED:
                raise Conflict(f"Container {c.id} is not paused")
            await self.runtime.resume(self.target(c))
            c.state.status = Status.RUNNING
            try:
                await self.table.save(c)
            except OSError as exc:
                # it runs: say so rather than fail (a full disk); the record catches up
                # at its next save, and a restarted moord asks the runtime anyway
                log.warning("container %s unpaused, but its record could not be saved: %s",
                            c.short_id, exc)
        self.publish(c, "unpause")

    async def resize(self, c: Container, height: int, width: int) -> None:
        """Tell the container's monitor the terminal's size (a no-op without a TTY)."""
        if not c.spec.tty:
            return
        await self.runtime.resize(self.target(c), height, width)

    # remove -------------------------------------------------------------------
    async def remove(self, c: Container, *, force: bool = False, volumes: bool = False) -> None:
        with METRICS.container_actions.time(action="delete"):
            await removal.remove(self, c, force=force, volumes=volumes)

    async def finish_removal(self, c: Container, *, volumes: bool = False) -> None:
        """Remove a stopped container (or one whose removal was interrupted); the caller
        holds its lock or is recovery, before anyone else can. `volumes`: its anonymous
        volumes too."""
        await removal.remove_locked(self, c, volumes=volumes)

    async def prune(self, keep: Callable[[Container], bool]) -> tuple[list[str], int]:
        """Remove every stopped container that `keep` doesn't protect; returns their IDs
        and the bytes reclaimed."""
        return await removal.prune(self, keep)

    # rename -------------------------------------------------------------------
    async def rename(self, c: Container, new_name: str) -> None:
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        new = names.validate(new_name)
        if new == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        old = c.name
        self.table.reserve_name(new, c.id)
        c.name = new
        try:
            await self.table.save(c)
        except BaseException:
            c.name = old
            self.table.release_name(new, c.id)
            raise
        self.table.release_name(old, c.id)
        if self.networks is not None:
            await self.networks.rename(c.id, new)
        self.publish(c, "rename", oldName="/" + old)

    # networking -----------------------------------------------------------------
    def networking_of(self, c: Container) -> ContainerNetworking:
        if c.networking is None:
            assert self.networks is not None
            c.networking, _ = self.networks.validate_container_networking(
                network_mode=c.host.network_mode, dns=c.host.dns, dns_search=c.host.dns_search,
                dns_options=c.host.dns_options, extra_hosts=c.host.extra_hosts)
        return c.networking

    def info_of(self, c: Container) -> ContainerInfo:
        from engine.networks.model import ContainerInfo

        return ContainerInfo(id=c.id, name=c.name, hostname=c.spec.hostname,
                             domainname=c.spec.domainname, networking=self.networking_of(c),
                             running=c.state.is_live)

    async def attach_network(self, c: Container, *, linked: tuple[LinkedContainer, ...] = (),
                             owner: Container | None = None) -> Attachment:
        """Network `c` for a start: with its links' containers, or in the namespace of the
        running `owner` (`container:` mode)."""
        if self.networks is None:
            raise SystemFailure("the network service is not running")
        info = attrs.evolve(self.info_of(c), links=linked)
        if owner is not None:
            info = attrs.evolve(info, joins=owner.id, joins_pid=owner.state.pid)
        return await self.networks.attach(info)

    def etc_paths(self, c: Container) -> ContainerPaths:
        """Where `c`'s /etc/hostname, hosts and resolv.conf are (another container's in
        `container:` network mode)."""
        return netshare.etc_paths(self, c)

    # legacy links -----------------------------------------------------------------
    def link_names(self) -> dict[str, list[str]]:
        """The `/parent/alias` names of links, by the ID of the container they lead to."""
        return links.names_by_container(self)

    def links_shown(self, c: Container) -> list[str] | None:
        """`HostConfig.Links` for inspect: `/child:/parent/alias`."""
        return links.shown(self, c)

    async def remove_link(self, ref: str) -> None:
        """`DELETE /containers/{parent/alias}?link=1`."""
        await links.remove(self, ref)

    async def detach_network(self, c: Container) -> None:
        if self.networks is not None:
            await self.networks.detach(c.id)

    async def restore_networks(self, container_ids: list[str]) -> None:
        """At start-up: the networks of the containers that kept running."""
        if self.networks is not None:
            await self.networks.restore(container_ids)

    # wait ---------------------------------------------------------------------
    async def wait(self, c: Container, condition: str) -> WaitResult:
        """`POST /containers/{id}/wait`, as dockerd: `not-running` returns at once for a
        container that is not running, else at its next exit, even one its restart
        policy undoes (a restarting container counts as running)."""
        live = self.live_of(c)
        if condition in ("", "not-running"):
            if not c.state.is_live and c.state.status is not Status.RESTARTING:
                return WaitResult(c.state.exit_code)
            notice = live.next_exit
        elif condition == "next-exit":
            notice = live.next_exit
        elif condition == "removed":
            notice = live.removed
        else:
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        await notice.event.wait()
        return WaitResult(notice.exit_code, notice.error)

    async def wait_at_rest(self, c: Container) -> WaitResult:
        """Until `c` exits with no restart pending (`logs -f` follows across restarts)."""
        if not c.state.is_live and c.state.status is not Status.RESTARTING:
            return WaitResult(c.state.exit_code)
        notice = self.live_of(c).stopped
        await notice.event.wait()
        return WaitResult(notice.exit_code, notice.error)


@attrs.define(eq=False)
class ContainerDirectory:
    """The container manager as the network service sees it (connect, disconnect)."""

    manager: ContainerManager

    def find(self, ref: str) -> ContainerInfo:
        return self.manager.info_of(self.manager.get(ref))

    def all(self) -> list[ContainerInfo]:
        return [self.manager.info_of(c) for c in self.manager.table]

    async def save_networking(self, container_id: str, networking: ContainerNetworking) -> None:
        c = self.manager.get(container_id)
        c.networking = networking
        await self.manager.table.save(c)
