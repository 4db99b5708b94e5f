"""The container lifecycle: create, start, stop, kill, restart, remove, wait, rename.

One `ContainerManager` per daemon. Each live container has one monitor task (in
the manager's nursery) that waits on a pidfd of its conmon and handles the exit.
User operations on one container are serialised by its `op_lock`; exit handling
does not take that lock (a stop holds it while waiting for the exit), it only
mutates the record and wakes waiters. Every state change is persisted before it is
announced, so a `kill -9` of moord never loses one that a client saw.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal as signals
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from engine import fsutil, ids
from engine.containers import create as creation
from engine.containers import names
from engine.containers.attach import AttachHub
from engine.containers.bundle import BundleMaker
from engine.containers.layout import ContainerPaths
from engine.containers.model import (
    Container,
    ContainerSpec,
    HostSpec,
    Status,
    StopReason,
)
from engine.containers.registry import Registry
from engine.errors import Conflict, EngineError, InvalidParameter, NotModified, SystemFailure
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
from engine.runtime.spec import parse_security_opt

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.images.store import ImageStore
    from engine.runtime.host import HostProfile

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.define(eq=False)
class ExitNotice:
    """Fires at one exit of a container (or its removal), carrying the exit code."""

    event: trio.Event = attrs.field(factory=trio.Event)
    exit_code: int = 0
    error: str = ""

    def fire(self, exit_code: int, error: str = "") -> None:
        self.exit_code = exit_code
        self.error = error
        self.event.set()


@attrs.define(eq=False)
class Live:
    """In-memory companions of a container record: locks, waiters, monitor state."""

    op_lock: trio.Lock = attrs.field(factory=trio.Lock)
    next_exit: ExitNotice = attrs.field(factory=ExitNotice)
    removed: ExitNotice = attrs.field(factory=ExitNotice)
    stop_requested: bool = False
    stop_reason: StopReason = StopReason.USER
    manual_restart: bool = False
    monitor_scope: trio.CancelScope | None = None


@attrs.frozen
class WaitResult:
    status_code: int
    error: str = ""


def parse_signal(value: str | int | None, default: str = "SIGKILL") -> int:
    """A signal by name (with or without SIG) or number; a bad one is Docker's 400."""
    if value is None or value == "":
        value = default
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
        raise InvalidParameter(f"Invalid signal: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signals.Signals, name))
    except AttributeError:
        if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
            base, _, offset = name.partition("+" if "+" in name else "-")
            if offset.isdigit():
                ref = signals.SIGRTMIN if base == "SIGRTMIN" else signals.SIGRTMAX
                return int(ref) + (int(offset) if "+" in name else -int(offset))
        raise InvalidParameter(f"Invalid signal: {text}") from None


@attrs.define(eq=False)
class ContainerManager:
    config: DaemonConfig
    host: HostProfile
    images: ImageStore
    registry: Registry
    bundles: BundleMaker
    attach: AttachHub = attrs.field(factory=AttachHub)
    live: dict[str, Live] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None
    shutting_down: bool = False

    @classmethod
    def open(cls, config: DaemonConfig, host: HostProfile, images: ImageStore) -> ContainerManager:
        """Load every container record (blocking; start-up only)."""
        from engine.containers.model import Container as _C
        from engine.store import RecordStore

        store: RecordStore[_C] = RecordStore(
            config.data_root / "state" / "containers", _C, durable=config.durable_store)
        registry = Registry(store)
        registry.load()
        bundles = BundleMaker(config, host, images)
        return cls(config, host, images, registry, bundles)

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
            live = self.live[c.id] = Live()
        return live

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

    # create -------------------------------------------------------------------
    async def create(self, name: str | None, spec: ContainerSpec,
                     host: HostSpec) -> tuple[Container, list[str]]:
        warnings: list[str] = []
        image = self.images.resolve(spec.image)
        merged = creation.merge_image_config(spec, image.config)
        creation.validate(merged, host)
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
        if host.network_mode in ("default", "bridge"):
            # the bridge driver arrives with the network drivers; until then, loopback only
            pass
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
        )
        self.registry.reserve_name(name, container_id)
        try:
            paths = self.paths(container)
            await trio.to_thread.run_sync(self._make_dirs, paths)
            self.registry.add(container)
            await self.registry.save(container)
        except BaseException:
            self.registry.discard(container)
            raise
        self.live_of(container)
        return container, warnings

    @staticmethod
    def _make_dirs(paths: ContainerPaths) -> None:
        for d in (paths.root, paths.upper, paths.work, paths.bundle, paths.rootfs, paths.userdata):
            d.mkdir(parents=True, exist_ok=True)

    # start --------------------------------------------------------------------
    async def start(self, c: Container) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            await self._start_locked(c, reset_restart_state=True)

    async def _start_locked(self, c: Container, *, reset_restart_state: bool) -> None:
        st = c.state
        if st.status is Status.PAUSED:
            raise Conflict("cannot start a paused container, try unpause instead")
        if st.status is Status.RUNNING:
            raise NotModified()
        if st.status in (Status.REMOVING, Status.DEAD):
            raise Conflict("container is marked for removal and cannot be started")
        live = self.live_of(c)
        paths = self.paths(c)
        runtime = self.runtime_of(c)
        if reset_restart_state:
            st.restart_count = 0
            st.manually_stopped = False
        live.stop_requested = False
        live.stop_reason = StopReason.USER
        pidfd: int | None = None
        try:
            # forget the previous run's exit record before conmon could write a new one
            await trio.to_thread.run_sync(self._clear_run_files, paths)
            await runtime.delete(c.id, force=True)
            await self.bundles.prepare(c, paths, cgroups_path=self.cgroup_path(c))
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
        await self.registry.save(c)
        self.attach.started(c.id)
        self._watch(c, pidfd)

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
        await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        self.attach.start_failed(c.id, message)
        c.state.error = message
        c.state.exit_code = _start_exit_code(message)
        await self.registry.save(c)
        if remove and c.host.auto_remove:
            await self._remove_locked(c)

    def _watch(self, c: Container, pidfd: int | None) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._monitor, c, pidfd)

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

    # exit ---------------------------------------------------------------------
    async def handle_exit(self, c: Container, *, reason: StopReason | None = None,
                          fallback_code: int = 255) -> None:
        """Record an exit conmon reported (or that we inferred), clean up, wake waiters."""
        if c.id not in self.registry.by_id:
            return
        live = self.live_of(c)
        paths = self.paths(c)
        runtime = self.runtime_of(c)
        code = await trio.to_thread.run_sync(read_exit_file, paths.userdata)
        oom = await trio.to_thread.run_sync(oom_recorded, paths.userdata)
        if code is None:
            code = fallback_code
            if reason is None:
                reason = StopReason.MONITOR_LOST
        try:
            await runtime.delete(c.id, force=True)
            await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        except SystemFailure as exc:
            # record the exit anyway; the next start or removal retries the cleanup
            log.warning("cleaning up after %s: %s", c.short_id, exc.message)
        st = c.state
        st.status = Status.EXITED
        st.exit_code = code
        st.oom_killed = oom
        st.pid = 0
        st.conmon_pid = 0
        st.finished_at = _now()
        if reason is not None:
            st.stop_reason = reason
        elif live.stop_requested:
            st.stop_reason = live.stop_reason
        else:
            st.stop_reason = StopReason.EXITED
        await self.registry.save(c)
        self._notify_exit(c, code)
        if c.host.auto_remove and not live.manual_restart and not self.shutting_down:
            try:
                await self.remove(c, force=True)
            except Exception:
                log.exception("auto-removing %s failed", c.short_id)

    def _notify_exit(self, c: Container, code: int) -> None:
        live = self.live_of(c)
        notice, live.next_exit = live.next_exit, ExitNotice()
        notice.fire(code)

    # stop / kill ----------------------------------------------------------------
    def _stop_signal(self, c: Container, override: str | None) -> int:
        return parse_signal(override or c.spec.stop_signal or "SIGTERM")

    async def stop(self, c: Container, *, grace: int | None = None, signal: str | None = None) -> None:
        live = self.live_of(c)
        async with live.op_lock:
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
        if reason is StopReason.USER:
            c.state.manually_stopped = True
        runtime = self.runtime_of(c)
        wait: float = grace if grace >= 0 else float("inf")
        try:
            await self._signal(c, runtime, sig)
        except ContainerGone:
            pass
        except SystemFailure as exc:
            log.warning("sending %s to %s failed: %s", sig, c.short_id, exc.message)
            wait = min(wait, 2.0)
        with trio.move_on_after(wait):
            await notice.event.wait()
            return
        await self._kill_and_wait(c, runtime, notice)

    async def _signal(self, c: Container, runtime: OCIRuntime, sig: int) -> None:
        await runtime.kill(c.id, sig)
        if c.state.status is Status.PAUSED:
            # a frozen container can't act on the signal (crun 1.8 can't even SIGKILL it)
            await runtime.resume(c.id)
            c.state.status = Status.RUNNING
            await self.registry.save(c)

    async def _kill_and_wait(self, c: Container, runtime: OCIRuntime, notice: ExitNotice) -> None:
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
        if not c.state.is_live:
            raise Conflict(f"Cannot kill container: {c.id}: container {c.id} is not running")
        live = self.live_of(c)
        runtime = self.runtime_of(c)
        stop_signal = self._stop_signal(c, None)
        notice = live.next_exit
        if sig == signals.SIGKILL or sig == stop_signal:
            # only a signal meant to end the container counts as a user stop
            live.stop_requested = True
            c.state.manually_stopped = True
        if sig == signals.SIGKILL:
            await self._kill_and_wait(c, runtime, notice)
            return
        try:
            await self._signal(c, runtime, sig)
        except ContainerGone:
            raise Conflict(f"Cannot kill container: {c.id}: container {c.id} is not running") from None

    async def restart(self, c: Container, *, grace: int | None = None, signal: str | None = None) -> None:
        live = self.live_of(c)
        async with live.op_lock:
            live.manual_restart = True
            try:
                if c.state.is_live:
                    await self._stop_locked(c, grace=grace, signal=signal)
                await self._start_locked(c, reset_restart_state=True)
            finally:
                live.manual_restart = False

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

    async def unpause(self, c: Container) -> None:
        async with self.live_of(c).op_lock:
            if c.state.status is not Status.PAUSED:
                raise Conflict(f"Container {c.id} is not paused")
            await self.runtime_of(c).resume(c.id)
            c.state.status = Status.RUNNING
            await self.registry.save(c)

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
                    verb = "paused" if c.state.status is Status.PAUSED else "running"
                    raise Conflict(
                        f'cannot remove container "/{c.name}": container is {verb}: stop the '
                        "container before removing or force remove"
                    )
                live.manual_restart = True  # no auto-remove from the exit path: we remove
                live.stop_requested = True
                notice = live.next_exit
                await self._kill_and_wait(c, self.runtime_of(c), notice)
            if c.state.status is Status.REMOVING and not force:
                raise Conflict(f"removal of container {c.name} is already in progress")
            await self._remove_locked(c)

    async def _remove_locked(self, c: Container) -> None:
        c.state.status = Status.REMOVING
        await self.registry.save(c)
        paths = self.paths(c)
        runtime = self.runtime_of(c)
        await runtime.delete(c.id, force=True)
        await trio.to_thread.run_sync(self._remove_files, paths, self.host.cgroups,
                                      self.cgroup_path(c))
        await self.registry.forget(c)
        # an image force-removed while this container used it can go now
        await self.images.gc(lambda image_id: bool(self.image_users(image_id)))
        live = self.live.pop(c.id, None)
        self.attach.start_failed(c.id, "container was removed")
        if live is not None:
            code = c.state.exit_code
            live.next_exit.fire(code)
            live.removed.fire(code)

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

    # wait ---------------------------------------------------------------------
    async def wait(self, c: Container, condition: str) -> WaitResult:
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

    # shutdown -----------------------------------------------------------------
    async def stop_all(self) -> None:
        """Stop every live container in parallel, each with its own grace period."""
        self.shutting_down = True
        async with trio.open_nursery() as nursery:
            for c in self.registry:
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


def _write_ctl(ctl: Path, message: str) -> None:
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, message.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _start_exit_code(message: str) -> int:
    lowered = message.lower()
    if "permission denied" in lowered:
        return 126
    if "not found" in lowered or "no such file" in lowered:
        return 127
    return 128


def _start_error(message: str, path: str) -> Exception:
    """Docker reports a missing or non-executable command as a 400, other failures as 500.

    The docker CLI picks its exit code (127, 126) from Docker's own wording of these
    errors, so crun's words are followed by Docker's.
    """
    lowered = message.lower()
    text = f"failed to create task for container: OCI runtime create failed: {message}"
    if "not found" in lowered or "no such file" in lowered:
        return InvalidParameter(f'{text}: exec: "{path}": executable file not found in $PATH')
    if "permission denied" in lowered:
        return InvalidParameter(f'{text}: exec: "{path}": permission denied')
    return SystemFailure(text)

