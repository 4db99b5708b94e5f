"""The container lifecycle: create, start, stop, kill, restart, remove, wait, rename.

One `ContainerManager` per daemon. Each live container has one monitor task (in
the manager's nursery) that waits on a pidfd of its conmon and handles the exit:
it records it, applies the restart policy (`engine.containers.policy`) and wakes
waiters. User operations on one container are serialised by its `op_lock`; exit
handling does not take that lock (a stop holds it while waiting for the exit).
Every state change is persisted before it is announced, so a `kill -9` of moord
never loses one that a client saw.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal as signals
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from engine import fsutil, ids
from engine.containers import create as creation
from engine.containers import names, policy
from engine.containers.attach import AttachHub
from engine.containers.bundle import BundleMaker
from engine.containers.layout import ContainerPaths
from engine.containers.live import ExitNotice, Live, WaitResult
from engine.containers.model import (
    Container,
    ContainerSpec,
    HealthState,
    HostSpec,
    LogConfig,
    RestartPolicy,
    Status,
    StopReason,
)
from engine.containers.registry import Registry
from engine.containers.resources import ResourceUpdate, updated_host
from engine.containers.signals import parse_signal
from engine.errors import Conflict, EngineError, InvalidParameter, NotModified, SystemFailure
from engine.events import EventBus
from engine.logs.rotation import RotationPolicy, keep_rotated
from engine.logs.sinks import DRAIN_TIMEOUT, ship_lines
from engine.runtime import cgroups, conmon, mounts
from engine.runtime.exits import (
    close_fd,
    oom_recorded,
    open_conmon_pidfd,
    read_exit_file,
    wait_for_pidfd,
)
from engine.runtime.oci import ContainerGone, OCIRuntime
from engine.runtime.rlimits import validate_ulimits
from engine.runtime.security import parse_security_opt
from engine.runtime.spec import limit_resources
from engine.volumes.model import MountRequest
from engine.volumes.parse import parse_mount_requests, parse_volumes_from, volumes_from
from plugins.contracts import InvalidLogOption, LogDriver, LoggedContainer

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.images.store import ImageStore
    from engine.networks.model import Attachment, ContainerInfo, ContainerNetworking
    from engine.networks.service import NetworkService
    from engine.runtime.host import HostProfile
    from engine.volumes.service import VolumeService

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10.0
USER_SIGNAL_WINDOW = 10.0  # a container dying this soon after a user's signal died of it

__all__ = ["ContainerManager", "WaitResult", "parse_signal"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.define(eq=False)
class ContainerManager:
    config: DaemonConfig
    host: HostProfile
    images: ImageStore
    registry: Registry
    bundles: BundleMaker
    events: EventBus = attrs.field(factory=EventBus)
    log_drivers: Mapping[str, LogDriver] = attrs.field(factory=dict)
    attach: AttachHub = attrs.field(factory=AttachHub)
    live: dict[str, Live] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    shutting_down: bool = False
    volumes: VolumeService | None = None
    networks: NetworkService | None = None

    @classmethod
    def open(cls, config: DaemonConfig, host: HostProfile, images: ImageStore,
             events: EventBus | None = None,
             log_drivers: Mapping[str, LogDriver] | None = None) -> ContainerManager:
        """Load every container record (blocking; start-up only)."""
        from engine.store import RecordStore

        store: RecordStore[Container] = RecordStore(
            config.data_root / "state" / "containers", Container, durable=config.durable_store)
        registry = Registry(store)
        registry.load()
        bundles = BundleMaker(config, host, images)
        return cls(config, host, images, registry, bundles, events or EventBus(),
                   dict(log_drivers or {}))

    # plumbing -----------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the monitors' nursery; reconcile records with reality first."""
        from engine.containers.recovery import recover

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await recover(self)
            task_status.started()
            await trio.sleep_forever()

    def live_of(self, c: Container) -> Live:
        live = self.live.get(c.id)
        if live is None:
            live = self.live[c.id] = Live(backoff=self._new_backoff())
        return live

    def _new_backoff(self) -> policy.Backoff:
        return policy.Backoff(self.config.restart_delay_initial, self.config.restart_delay_max,
                              self.config.restart_delay_reset)

    def reconfigure(self, config: DaemonConfig) -> None:
        """Apply reloadable settings (SIGHUP): the restart back-off."""
        self.config = config
        for live in self.live.values():
            live.backoff.initial = config.restart_delay_initial
            live.backoff.maximum = config.restart_delay_max
            live.backoff.reset_after = config.restart_delay_reset

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    def paths(self, c: Container | str) -> ContainerPaths:
        cid = c if isinstance(c, str) else c.id
        return ContainerPaths.under(self.config.data_root, cid)

    def runtime_of(self, c: Container) -> OCIRuntime:
        info = self.host.runtimes[c.runtime]
        return OCIRuntime(info.name, info.path, self.config.exec_root / info.name)

    def get(self, ref: str) -> Container:
        return self.registry.lookup(ref)

    def all(self) -> list[Container]:
        return sorted(self.registry, key=lambda c: c.created, reverse=True)

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        """Containers made from `image_id`: (id, running)."""
        return [(c.id, c.state.is_live) for c in self.registry if c.image_id == image_id]

    def cgroup_path(self, c: Container) -> str:
        return f"/{self.config.cgroup_parent.strip('/')}/{c.id}"

    def publish(self, c: Container, action: str, **extra: str) -> None:
        """A container event, with Docker's attributes: image, name and the labels."""
        attributes = dict(c.spec.labels)
        attributes.update(image=c.spec.image, name=c.name)
        attributes.update(extra)
        self.events.publish("container", action, c.id, attributes)

    # create -------------------------------------------------------------------
    async def create(self, name: str | None, spec: ContainerSpec,
                     host: HostSpec, endpoints: Any = None) -> tuple[Container, list[str]]:
        warnings: list[str] = []
        image = self.images.resolve(spec.image)
        merged = creation.merge_image_config(spec, image.config)
        creation.validate(merged, host)
        networking = None
        if self.networks is not None:
            networking, net_warnings = self.networks.validate_container_networking(
                network_mode=host.network_mode, endpoints=endpoints,
                port_bindings={k: [(b.host_ip, b.host_port) for b in v]
                               for k, v in host.port_bindings.items()},
                publish_all=host.publish_all_ports, exposed_ports=merged.exposed_ports,
                dns=host.dns, dns_search=host.dns_search, dns_options=host.dns_options,
                extra_hosts=host.extra_hosts)
            warnings += net_warnings
        host.log_config = self._log_config(host.log_config)
        parse_security_opt(host.security_opt)
        validate_ulimits(host.ulimits)
        path, args = creation.process_of(merged)
        runtime = self.host.runtime_for(host.runtime).name
        if host.init and not self.host.init_path:
            raise InvalidParameter("--init needs tini-static or catatonit on the host")
        container_id = ids.new_id()
        name = names.validate(name) if name else names.generate(self.registry.names)
        if not merged.hostname:
            merged.hostname = container_id[:12]
        container = Container(
            id=container_id,
            name=name,
            created=_now(),
            image_id=image.id,
            spec=merged,
            host=host,
            path=path,
            args=args,
            runtime=runtime,
            networking=networking,
        )
        requests = self._mount_requests(merged, host, image.config.volumes)
        self.registry.reserve_name(name, container_id)
        try:
            assert self.volumes is not None
            container.mounts = await self.volumes.claim(container_id, requests)
            paths = self.paths(container)
            await trio.to_thread.run_sync(self._make_dirs, paths)
            self.registry.add(container)
            await self.registry.save(container)
        except BaseException:
            self.registry.discard(container)
            if self.volumes is not None and container.mounts:
                with trio.CancelScope(shield=True):
                    await self.volumes.release(container_id, container.mounts,
                                               remove_anonymous=True)
            raise
        self.live_of(container)
        self.publish(container, "create")
        return container, warnings

    def _mount_requests(self, spec: ContainerSpec, host: HostSpec,
                        image_volumes: list[str]) -> list[MountRequest]:
        inherited: list[MountRequest] = []
        for source in host.volumes_from:
            ref, mode = parse_volumes_from(source)
            other = self.registry.lookup(ref)
            inherited += volumes_from(other.mounts, mode)
        return parse_mount_requests(binds=host.binds, mounts=host.mounts, anonymous=spec.volumes,
                                    tmpfs=host.tmpfs, image_volumes=image_volumes,
                                    inherited=inherited, volume_driver=host.volume_driver)

    def log_driver(self, c: Container) -> LogDriver:
        driver = self.log_drivers.get(c.host.log_config.type)
        if driver is None:
            raise InvalidParameter(
                f"logger: no log driver named '{c.host.log_config.type}' is registered")
        return driver

    def _log_config(self, requested: LogConfig) -> LogConfig:
        """The driver (daemon default when none is named) and its options, checked; the
        daemon's default options apply when the container uses the default driver."""
        name = requested.type or self.config.log_driver
        driver = self.log_drivers.get(name)
        if driver is None:
            raise InvalidParameter(f"logger: no log driver named '{name}' is registered")
        options = dict(requested.config)
        # the daemon's defaults become the container's own, as dockerd merges its log-opts
        # (a driver that is only the file moord keeps: readable, shipping nothing)
        if (not requested.type or name == self.config.log_driver) and driver.readable \
                and not driver.ships:
            options.setdefault("max-size", self.config.log_max_size)
            options.setdefault("max-file", str(self.config.log_max_file))
        try:
            options = dict(driver.validate(options))
        except InvalidLogOption as exc:
            raise InvalidParameter(str(exc)) from None
        return LogConfig(name, options)

    def rotation_policy(self, c: Container) -> RotationPolicy:
        return RotationPolicy.from_options(c.host.log_config.config,
                                           default_size=self.config.log_max_size,
                                           default_files=self.config.log_max_file)

    @staticmethod
    def _make_dirs(paths: ContainerPaths) -> None:
        for d in (paths.root, paths.upper, paths.work, paths.bundle, paths.rootfs, paths.userdata):
            d.mkdir(parents=True, exist_ok=True)

    # start --------------------------------------------------------------------
    async def start(self, c: Container) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            if c.state.status is Status.RESTARTING:
                live.cancel_pending_restart()  # a user's start doesn't wait for the back-off
            await self._start_locked(c, reset_restart_state=True)

    async def _start_locked(self, c: Container, *, reset_restart_state: bool) -> None:
        st = c.state
        if st.status is Status.PAUSED:
            raise Conflict("cannot start a paused container, try unpause instead")
        if st.status is Status.RUNNING:
            raise NotModified()
        if st.status in (Status.REMOVING, Status.DEAD):
            raise Conflict("container is marked for removal and cannot be started")
        if c.host.log_config.type not in self.log_drivers:
            raise InvalidParameter(
                f"logger: no log driver named '{c.host.log_config.type}' is registered "
                "(was its plugin uninstalled?)")
        live = self.live_of(c)
        paths = self.paths(c)
        runtime = self.runtime_of(c)
        if reset_restart_state:
            st.restart_count = 0
            st.manually_stopped = False
            live.backoff.reset()
        live.stop_requested = False
        live.stop_reason = StopReason.USER
        live.user_signal = 0
        live.user_signal_deadline = 0.0
        pidfd: int | None = None
        try:
            # forget the previous run's exit record before conmon could write a new one
            await trio.to_thread.run_sync(self._clear_run_files, paths)
            await runtime.delete(c.id, force=True)
            attachment = await self.attach_network(c)
            await self.bundles.prepare(c, paths, cgroups_path=self.cgroup_path(c),
                                       attachment=attachment, volumes=self.volumes)
            launch = conmon.ConmonLaunch(
                container_id=c.id,
                name=c.name,
                bundle=paths.bundle,
                userdata=paths.userdata,
                log_path=paths.log,
                runtime_path=runtime.path,
                runtime_root=runtime.root,
                conmon_path=self.host.conmon_path,
                socket_dir=self.config.exec_root / "socks",
                stdin=c.spec.open_stdin,
                tty=c.spec.tty,
                # Docker closes stdin when a client leaves only for StdinOnce without a TTY
                leave_stdin_open=c.spec.tty or not c.spec.stdin_once,
                keep_log=self._keeps_log_file(c),
            )
            launched = await conmon.launch(launch, place=self._placer())
            pidfd = open_conmon_pidfd(launched.conmon_pid, c.id)
            await self.attach.connect_pending(c.id, paths.bundle)
            await runtime.start(c.id)
        except BaseException as exc:
            if pidfd is not None:
                close_fd(pidfd)
            message = exc.message if isinstance(exc, EngineError) else "the start was interrupted"
            with trio.CancelScope(shield=True):
                await self._start_failed(c, paths, runtime, message,
                                         remove=isinstance(exc, Exception))
            if isinstance(exc, conmon.RuntimeCreateFailed):
                raise _start_error(exc.message, c.path) from None
            raise
        st.status = Status.RUNNING
        st.pid = launched.container_pid
        st.conmon_pid = launched.conmon_pid
        st.started_at = _now()
        st.exit_code = 0
        st.error = ""
        st.oom_killed = False
        st.stop_reason = StopReason.NONE
        st.boot_id = self.host.boot_id
        st.has_been_started = True
        st.health = HealthState() if _has_healthcheck(c) else None
        await self.registry.save(c)
        self.publish(c, "start")
        self._watch(c, pidfd)
        self.start_run_tasks(c)

    def _placer(self) -> Callable[[int], Awaitable[None]]:
        layout = self.host.cgroups
        relpath = f"/{self.config.cgroup_parent.strip('/')}/conmon"

        async def place(pid: int) -> None:
            problems = await trio.to_thread.run_sync(cgroups.place_process, layout, pid, relpath)
            if problems:
                log.debug("conmon %d stays partly in moord's cgroups: %s", pid, "; ".join(problems))

        return place

    @staticmethod
    def _clear_run_files(paths: ContainerPaths) -> None:
        for name in ("exit", "oom", "pidfile", "conmon.pid"):
            try:
                (paths.userdata / name).unlink()
            except FileNotFoundError:
                pass

    async def _start_failed(self, c: Container, paths: ContainerPaths, runtime: OCIRuntime,
                            message: str, *, remove: bool) -> None:
        """Undo a start; an auto-remove container is removed (its `wait --removed` returns)."""
        await runtime.delete(c.id, force=True)
        if self.networks is not None:
            await self.networks.detach(c.id)
        await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        if self.volumes is not None:
            await self.volumes.unmount_after_stop(c.id, c.mounts)
        self.attach.start_failed(c.id, message)
        c.state.error = message
        c.state.exit_code = _start_exit_code(message)
        if c.state.status is Status.RESTARTING:
            c.state.status = Status.EXITED
            self.live_of(c).take_stopped().fire(c.state.exit_code, message)
        await self.registry.save(c)
        if remove and c.host.auto_remove:
            await self._remove_locked(c)

    def _watch(self, c: Container, pidfd: int | None) -> None:
        self.spawn(self._monitor, c, pidfd)

    async def _monitor(self, c: Container, pidfd: int | None) -> None:
        """Wait for the container's conmon to exit, then record the exit.

        A failure here must never take the other monitors down with it: it is logged.
        """
        if pidfd is not None:
            try:
                await wait_for_pidfd(pidfd)
            finally:
                close_fd(pidfd)
        try:
            await self.handle_exit(c)
        except Exception:
            log.exception("handling the exit of %s failed", c.short_id)

    # what runs beside a running container -------------------------------------------
    def _keeps_log_file(self, c: Container) -> bool:
        driver = self.log_drivers.get(c.host.log_config.type)
        return driver is None or driver.readable or driver.ships

    def start_run_tasks(self, c: Container) -> None:
        """Health checks, log rotation and log shipping, for as long as this run lasts."""
        live = self.live_of(c)
        live.end_run_tasks()
        scope = trio.CancelScope()
        live.run_scope = scope
        live.run_done = done = trio.Event()
        self.spawn(self._run_tasks, c, scope, done)

    async def _run_tasks(self, c: Container, scope: trio.CancelScope, done: trio.Event) -> None:
        try:
            await self._run_tasks_in(c, scope)
        finally:
            done.set()

    async def _run_tasks_in(self, c: Container, scope: trio.CancelScope) -> None:
        paths = self.paths(c)
        driver = self.log_drivers.get(c.host.log_config.type)
        with scope:
            async with trio.open_nursery() as nursery:
                if c.state.health is not None:
                    nursery.start_soon(self._guarded, "health checks", c,
                                       partial(_run_health_checks, self, c))
                if self._keeps_log_file(c):
                    policy = self.rotation_policy(c)
                    nursery.start_soon(self._guarded, "log rotation", c, partial(
                        keep_rotated, paths.log, paths.bundle / "ctl", policy))
                if driver is not None and driver.ships:
                    # everything not shipped yet, across runs and moord restarts
                    logged = LoggedContainer(c.id, c.name, c.spec.image, dict(c.spec.labels),
                                             dict(c.host.log_config.config))
                    nursery.start_soon(self._guarded, "log shipping", c, partial(
                        ship_lines, driver, logged, paths.log, 0,
                        paths.userdata / f"shipped.{driver.name}"))

    async def _guarded(self, what: str, c: Container, fn: Callable[..., Awaitable[object]]) -> None:
        """Run one of a container's companion tasks; its failure stays its own."""
        try:
            await fn()
        except Exception:
            log.exception("the %s of %s failed", what, c.short_id)

    def health_failed(self, c: Container) -> None:
        """The health check just declared `c` unhealthy: act as `--health-on-failure` says."""
        action = c.spec.health_on_failure
        if action in ("kill", "restart", "stop"):
            self.spawn(self._act_on_unhealthy, c, action)

    async def _act_on_unhealthy(self, c: Container, action: str) -> None:
        live = self.live_of(c)
        try:
            async with live.op_lock:
                if c.state.status is not Status.RUNNING:
                    return
                log.info("%s is unhealthy: %s", c.short_id, action)
                if action == "kill":
                    live.stop_requested = True
                    live.stop_reason = StopReason.HEALTH
                    await self._kill_and_wait(c, self.runtime_of(c), live.next_exit)
                    return
                live.manual_restart = action == "restart"
                try:
                    await self._stop_locked(c, grace=None, signal=None, reason=StopReason.HEALTH)
                    if action == "restart":
                        c.state.restart_count += 1
                        await self._start_locked(c, reset_restart_state=False)
                        self.publish(c, "restart")
                finally:
                    live.manual_restart = False
        except EngineError as exc:
            log.warning("acting on the health of %s failed: %s", c.short_id, exc.message)

    # exit ---------------------------------------------------------------------
    async def handle_exit(self, c: Container, *, reason: StopReason | None = None,
                          fallback_code: int = 255) -> None:
        """Record an exit conmon reported (or that we inferred), apply the restart policy."""
        if c.id not in self.registry.by_id:
            return
        live = self.live_of(c)
        run_done = live.end_run_tasks()
        paths = self.paths(c)
        runtime = self.runtime_of(c)
        code = await trio.to_thread.run_sync(read_exit_file, paths.userdata)
        oom = await trio.to_thread.run_sync(oom_recorded, paths.userdata)
        if code is None:
            code = fallback_code
            if reason is None:
                reason = StopReason.MONITOR_LOST
        if reason is None:
            if live.stop_requested:
                reason = live.stop_reason
            elif self._died_of_user_signal(c, live, code):
                reason = StopReason.USER
            else:
                reason = StopReason.EXITED
        try:
            await runtime.delete(c.id, force=True)
            await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
            if self.volumes is not None:
                await self.volumes.unmount_after_stop(c.id, c.mounts)
        except SystemFailure as exc:
            # record the exit anyway; the next start or removal retries the cleanup
            log.warning("cleaning up after %s: %s", c.short_id, exc.message)
        if self.networks is not None:
            await self.networks.detach(c.id)
        if live.stop_requested and reason is StopReason.EXITED:
            # `docker stop` came while this exit was being recorded: the stop wins, or
            # the policy would restart a container the user just stopped
            reason = live.stop_reason
        st = c.state
        st.exit_code = code
        st.oom_killed = oom
        st.pid = 0
        st.conmon_pid = 0
        st.finished_at = _now()
        st.stop_reason = reason
        if reason is StopReason.USER:
            st.manually_stopped = True
        restart = not live.manual_restart and policy.restarts_after_exit(
            c.host.restart_policy, st, shutting_down=self.shutting_down)
        if restart:
            st.status = Status.RESTARTING
            st.restart_count += 1
        else:
            st.status = Status.EXITED
        await self.registry.save(c)
        run_seconds = (st.finished_at - st.started_at).total_seconds() if st.started_at else 0.0
        if oom:
            self.publish(c, "oom")
        self.publish(c, "die", exitCode=str(code), execDuration=str(int(run_seconds)),
                     reason=reason.value)
        live.take_next_exit().fire(code)
        if restart:
            delay = live.backoff.next_delay(run_seconds)
            self.spawn(self._restart_after, c, delay)
            return
        live.take_stopped().fire(code)
        if run_done is not None:
            # a log shipper drains the file before an auto-remove deletes it
            with trio.move_on_after(DRAIN_TIMEOUT + 1):
                await run_done.wait()
        if c.host.auto_remove and not live.manual_restart and not self.shutting_down:
            try:
                await self.remove(c, force=True)
            except Exception:
                log.exception("auto-removing %s failed", c.short_id)

    def _died_of_user_signal(self, c: Container, live: Live, code: int) -> bool:
        """Did the user's `kill -s` end it? Its stop signal: if it died soon after; any
        other signal: only if it died of that very signal (moby#11065, #41302)."""
        if not live.user_signal or trio.current_time() > live.user_signal_deadline:
            return False
        return live.user_signal == self._stop_signal(c, None) or code == 128 + live.user_signal

    async def _restart_after(self, c: Container, delay: float) -> None:
        """The restart policy's restart, after its back-off; a stop or removal cancels it."""
        live = self.live_of(c)
        with trio.CancelScope() as scope:
            live.restart_scope = scope
            await trio.sleep(delay)
        if live.restart_scope is scope:
            live.restart_scope = None
        if scope.cancelled_caught or self.shutting_down:
            return
        async with live.op_lock:
            if c.state.status is not Status.RESTARTING or c.id not in self.registry.by_id:
                return
            try:
                await self._start_locked(c, reset_restart_state=False)
            except EngineError as exc:
                log.warning("restarting %s failed: %s", c.short_id, exc.message)
                return
        self.publish(c, "restart")

    async def _come_to_rest(self, c: Container, reason: StopReason) -> None:
        """A restarting container is stopped: cancel its pending restart."""
        live = self.live_of(c)
        live.cancel_pending_restart()
        c.state.status = Status.EXITED
        c.state.stop_reason = reason
        if reason is StopReason.USER:
            c.state.manually_stopped = True
        await self.registry.save(c)
        live.take_stopped().fire(c.state.exit_code)
        self.publish(c, "stop")

    # stop / kill ----------------------------------------------------------------
    def _stop_signal(self, c: Container, override: str | None) -> int:
        return parse_signal(override or c.spec.stop_signal or "SIGTERM")

    async def stop(self, c: Container, *, grace: int | None = None, signal: str | None = None) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            if c.state.status is Status.RESTARTING:
                await self._come_to_rest(c, StopReason.USER)
                return
            await self._stop_locked(c, grace=grace, signal=signal)

    async def _stop_locked(self, c: Container, *, grace: int | None, signal: str | None,
                           reason: StopReason = StopReason.USER) -> None:
        """Stop signal, `grace` seconds (None: the container's or 10; -1: for ever), SIGKILL."""
        if not c.state.is_live:
            raise NotModified()
        live = self.live_of(c)
        sig = self._stop_signal(c, signal)
        if grace is None:
            grace = c.spec.stop_timeout if c.spec.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
        notice = live.next_exit
        live.stop_requested = True
        live.stop_reason = reason
        runtime = self.runtime_of(c)
        wait: float = grace if grace >= 0 else float("inf")
        self.publish(c, "kill", signal=str(sig))
        try:
            await self._signal(c, runtime, sig)
        except ContainerGone:
            pass
        except SystemFailure as exc:
            log.warning("sending %s to %s failed: %s", sig, c.short_id, exc.message)
            wait = min(wait, 2.0)
        with trio.move_on_after(wait):
            await notice.event.wait()
            self.publish(c, "stop")
            return
        await self._kill_and_wait(c, runtime, notice)
        self.publish(c, "stop")

    async def _signal(self, c: Container, runtime: OCIRuntime, sig: int) -> None:
        await runtime.kill(c.id, sig)
        if c.state.status is Status.PAUSED:
            # a frozen container can't act on the signal (crun 1.8 can't even SIGKILL it)
            await runtime.resume(c.id)
            c.state.status = Status.RUNNING
            await self.registry.save(c)

    async def _kill_and_wait(self, c: Container, runtime: OCIRuntime, notice: ExitNotice) -> None:
        self.publish(c, "kill", signal=str(int(signals.SIGKILL)))
        try:
            await self._signal(c, runtime, signals.SIGKILL)
        except ContainerGone:
            pass
        with trio.move_on_after(KILL_WAIT):
            await notice.event.wait()
            return
        pid = c.state.pid
        if pid > 0:
            try:
                os.kill(pid, signals.SIGKILL)
            except ProcessLookupError:
                pass
        with trio.move_on_after(2.0):
            await notice.event.wait()
            return
        raise SystemFailure("tried to kill container, but did not receive an exit event")

    async def kill(self, c: Container, signal: str | None) -> None:
        sig = parse_signal(signal, default="SIGKILL")
        live = self.live_of(c)
        not_running = Conflict(f"Cannot kill container: {c.id}: container {c.id} is not running")
        if c.state.status is Status.RESTARTING and sig in (signals.SIGKILL, self._stop_signal(c, None)):
            async with live.op_lock:
                await self._come_to_rest(c, StopReason.USER)
            return
        if not c.state.is_live:
            raise not_running
        runtime = self.runtime_of(c)
        if sig == signals.SIGKILL:
            live.stop_requested = True
            live.stop_reason = StopReason.USER
            await self._kill_and_wait(c, runtime, live.next_exit)
            return
        # counts as a user stop only if the container dies of it (see _died_of_user_signal)
        live.user_signal = sig
        live.user_signal_deadline = trio.current_time() + USER_SIGNAL_WINDOW
        self.publish(c, "kill", signal=str(sig))
        try:
            await self._signal(c, runtime, sig)
        except ContainerGone:
            raise not_running from None

    async def restart(self, c: Container, *, grace: int | None = None, signal: str | None = None) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            live.manual_restart = True
            try:
                live.cancel_pending_restart()
                if c.state.is_live:
                    await self._stop_locked(c, grace=grace, signal=signal)
                if c.state.status is Status.RESTARTING:
                    c.state.status = Status.EXITED
                await self._start_locked(c, reset_restart_state=True)
            finally:
                live.manual_restart = False
        self.publish(c, "restart")

    async def update_restart_policy(self, c: Container, new: RestartPolicy) -> None:
        """`docker update --restart`: takes effect at the next exit."""
        if new.name not in creation.RESTART_POLICIES:
            raise InvalidParameter(f"invalid restart policy '{new.name}'")
        if new.maximum_retry_count and new.name != "on-failure":
            raise InvalidParameter(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'")
        if c.host.auto_remove and new.name != "no":
            raise InvalidParameter(
                "Restart policy cannot be updated because AutoRemove is enabled for the container")
        async with self.live_of(c).op_lock:
            c.host.restart_policy = new
            await self.registry.save(c)
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
                    await self.runtime_of(c).update(c.id, resources)
                    if unlimited_pids:
                        await trio.to_thread.run_sync(cgroups.lift_pids_limit, self.host.cgroups,
                                                      self.cgroup_path(c))
                except SystemFailure as exc:
                    raise SystemFailure(f"Cannot update container {c.id}: {exc.message}") from None
            c.host = new
            await self.registry.save(c)
        self.publish(c, "update")

    # pause / resize -------------------------------------------------------------
    async def pause(self, c: Container) -> None:
        async with self.live_of(c).op_lock:
            if c.state.status is Status.PAUSED:
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status is not Status.RUNNING:
                raise Conflict(f"Container {c.id} is not running")
            await self.runtime_of(c).pause(c.id)
            c.state.status = Status.PAUSED
            await self.registry.save(c)
        self.publish(c, "pause")

    async def unpause(self, c: Container) -> None:
        async with self.live_of(c).op_lock:
            if c.state.status is not Status.PAUSED:
                raise Conflict(f"Container {c.id} is not paused")
            await self.runtime_of(c).resume(c.id)
            c.state.status = Status.RUNNING
            await self.registry.save(c)
        self.publish(c, "unpause")

    async def resize(self, c: Container, height: int, width: int) -> None:
        """Tell conmon the terminal's size (a no-op without a TTY)."""
        if not c.spec.tty:
            return
        ctl = self.paths(c).bundle / "ctl"
        await trio.to_thread.run_sync(_write_ctl, ctl, f"1 {height} {width}\n")

    # remove -------------------------------------------------------------------
    async def remove(self, c: Container, *, force: bool = False, volumes: bool = False) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            if c.id not in self.registry.by_id:
                return
            if c.state.is_live or c.state.status is Status.RESTARTING:
                if not force:
                    verb = {Status.PAUSED: "paused", Status.RESTARTING: "restarting"}.get(
                        c.state.status, "running")
                    raise Conflict(
                        f'cannot remove container "/{c.name}": container is {verb}: stop the '
                        "container before removing or force remove"
                    )
                live.cancel_pending_restart()
                live.manual_restart = True  # no auto-remove or restart from the exit path
                if c.state.is_live:
                    live.stop_requested = True
                    live.stop_reason = StopReason.USER
                    await self._kill_and_wait(c, self.runtime_of(c), live.next_exit)
            if c.state.status is Status.REMOVING and not force:
                raise Conflict(f"removal of container {c.name} is already in progress")
            await self._remove_locked(c, volumes=volumes)

    async def _remove_locked(self, c: Container, *, volumes: bool = False) -> None:
        c.state.status = Status.REMOVING
        await self.registry.save(c)
        paths = self.paths(c)
        runtime = self.runtime_of(c)
        await runtime.delete(c.id, force=True)
        if self.networks is not None:
            await self.networks.detach(c.id)
        await trio.to_thread.run_sync(self._remove_files, paths, self.host.cgroups,
                                      self.cgroup_path(c))
        await self.registry.forget(c)
        if self.volumes is not None:
            await self.volumes.release(c.id, c.mounts,
                                       remove_anonymous=volumes or c.host.auto_remove)
        # an image force-removed while this container used it can go now
        await self.images.gc(lambda image_id: bool(self.image_users(image_id)))
        live = self.live.pop(c.id, None)
        self.attach.start_failed(c.id, "container was removed")
        if live is not None:
            live.cancel_pending_restart()
            live.end_run_tasks()
            code = c.state.exit_code
            for notice in (live.next_exit, live.stopped, live.removed):
                notice.fire(code)
        self.publish(c, "destroy")

    @staticmethod
    def _remove_files(paths: ContainerPaths, layout: cgroups.CgroupLayout, cgroup: str) -> None:
        mounts.unmount(paths.rootfs)
        cgroups.remove_cgroup(layout, cgroup)
        fsutil.remove_tree(paths.root)

    async def prune(self, keep: Callable[[Container], bool]) -> list[str]:
        """Remove every stopped container that `keep` doesn't protect; returns their IDs."""
        removed: list[str] = []
        for c in list(self.registry):
            if c.state.is_live or c.state.status in (Status.RESTARTING, Status.REMOVING):
                continue
            if keep(c):
                continue
            try:
                await self.remove(c)
            except (Conflict, NotModified):
                continue
            removed.append(c.id)
        return removed

    # rename -------------------------------------------------------------------
    async def rename(self, c: Container, new_name: str) -> None:
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        new = names.validate(new_name)
        if new == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        old = c.name
        self.registry.reserve_name(new, c.id)
        c.name = new
        try:
            await self.registry.save(c)
        except BaseException:
            c.name = old
            self.registry.release_name(new, c.id)
            raise
        self.registry.release_name(old, c.id)
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

    async def attach_network(self, c: Container) -> Attachment:
        if self.networks is None:
            raise SystemFailure("the network service is not running")
        return await self.networks.attach(self.info_of(c))

    # wait ---------------------------------------------------------------------
    async def wait(self, c: Container, condition: str) -> WaitResult:
        live = self.live_of(c)
        if condition in ("", "not-running"):
            if not c.state.is_live and c.state.status is not Status.RESTARTING:
                return WaitResult(c.state.exit_code)
            notice = live.stopped
        elif condition == "next-exit":
            notice = live.next_exit
        elif condition == "removed":
            notice = live.removed
        else:
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        await notice.event.wait()
        return WaitResult(notice.exit_code, notice.error)

    # daemon start and shutdown ----------------------------------------------------
    async def start_by_policy(self, c: Container) -> None:
        """Start a container whose restart policy says so at daemon start."""
        live = self.live_of(c)
        try:
            async with live.op_lock:
                if c.state.status not in (Status.EXITED, Status.RESTARTING):
                    return
                live.cancel_pending_restart()
                await self._start_locked(c, reset_restart_state=False)
            self.publish(c, "restart")
        except EngineError as exc:
            log.warning("starting %s by its restart policy failed: %s", c.short_id, exc.message)

    async def stop_all(self) -> None:
        """Stop every live container in parallel, each with its own grace period."""
        self.shutting_down = True
        async with trio.open_nursery() as nursery:
            for c in self.registry:
                live = self.live.get(c.id)
                if live is not None:
                    live.cancel_pending_restart()
                if c.state.is_live:
                    nursery.start_soon(self._stop_for_shutdown, c)

    async def _stop_for_shutdown(self, c: Container) -> None:
        try:
            live = self.live_of(c)
            async with live.op_lock:
                await self._stop_locked(c, grace=None, signal=None,
                                        reason=StopReason.DAEMON_SHUTDOWN)
        except NotModified:
            pass
        except Exception:
            log.exception("stopping %s at shutdown failed", c.short_id)


async def _run_health_checks(manager: ContainerManager, c: Container) -> None:
    from engine.containers.health import run_health_checks

    await run_health_checks(manager, c)


def _has_healthcheck(c: Container) -> bool:
    from engine.containers.health import has_probe

    return has_probe(c.spec.healthcheck)


def _write_ctl(ctl: Path, message: str) -> None:
    """A message on conmon's control FIFO; a failure is logged (a resize is not worth
    failing the request, and conmon may be exiting with its container)."""
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        log.warning("cannot write to %s: %s", ctl, exc.strerror or exc)
        return
    try:
        os.write(fd, message.encode())
    except OSError as exc:
        log.warning("writing %r to %s: %s", message.strip(), ctl, exc.strerror or exc)
    finally:
        os.close(fd)


def _command_problem(message: str) -> str:
    """What a failed start says about the command: "missing", "denied" or "" (neither).

    Checked in the docker CLI's order (a missing file before a permission problem), so the
    recorded exit code and the one the CLI exits with agree.
    """
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return "missing"
    if "permission denied" in lowered:
        return "denied"
    return ""


def _start_exit_code(message: str) -> int:
    return {"missing": 127, "denied": 126}.get(_command_problem(message), 128)


def _start_error(message: str, path: str) -> Exception:
    """Docker reports a missing or non-executable command as a 400, other failures as 500.

    The docker CLI picks its exit code (127, 126) from Docker's own wording of these
    errors, so crun's words are followed by Docker's.
    """
    text = f"failed to create task for container: OCI runtime create failed: {message}"
    problem = _command_problem(message)
    if problem == "missing":
        return InvalidParameter(f'{text}: exec: "{path}": executable file not found in $PATH')
    if problem == "denied":
        return InvalidParameter(f'{text}: exec: "{path}": permission denied')
    return SystemFailure(text)



@attrs.define(eq=False)
class ContainerDirectory:
    """The container manager as the network service sees it (connect, disconnect)."""

    manager: ContainerManager

    def find(self, ref: str) -> ContainerInfo:
        return self.manager.info_of(self.manager.get(ref))

    def all(self) -> list[ContainerInfo]:
        return [self.manager.info_of(c) for c in self.manager.registry]

    async def save_networking(self, container_id: str, networking: ContainerNetworking) -> None:
        c = self.manager.get(container_id)
        c.networking = networking
        await self.manager.registry.save(c)
