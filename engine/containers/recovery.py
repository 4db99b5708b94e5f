"""Start-up: reconcile container records with what conmon and the kernel say.

moord may have died at any instant (`kill -9`, a crash, a reboot). For each record:
a conmon still alive for it → re-adopt (a new monitor waits on its pidfd); conmon
gone but its exit file there → the container exited while we were away, record it;
neither → the host rebooted (boot id changed: "host-crash", exit 255 as Docker records
an unknown status) or the monitor was lost ("monitor-lost": what still ran is killed,
exit 137, as containerd records a task whose shim died). A start interrupted between
conmon's create and the runtime's start is rolled back; a removal interrupted is
finished. A build's RUN container (`Container.build_step`) is killed and removed: the
build it served died with the moord that ran it. Then the restart policies' starts, in
dependency order (`engine.containers.ordered_start`).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import trio

from engine import fsutil
from engine.containers import ordered_start, policy
from engine.containers.layout import ContainerPaths
from engine.containers.model import Container, Status, StopReason
from engine.containers.supervision import KILLED
from engine.errors import EngineError
from engine.metrics.catalog import METRICS
from engine.runtime import mounts
from engine.runtime.interface import ContainerRuntime, ExitWatch, RuntimeState, RuntimeTarget


class Recoverable(ordered_start.StartsInOrder, Protocol):
    """What recovery needs of the container manager (which is one)."""

    @property
    def runtime(self) -> ContainerRuntime: ...

    @property
    def boot_id(self) -> str:
        """This boot's: a record started under another one outlived a host reboot."""

    @property
    def containers_dir(self) -> Path:
        """Where the containers' directories are (orphans too)."""

    def records(self) -> list[Container]: ...

    def recorded(self, container_id: str) -> bool: ...

    def paths(self, c: Container | str) -> ContainerPaths: ...

    def target(self, c: Container) -> RuntimeTarget: ...

    async def save(self, c: Container) -> None: ...

    def publish(self, c: Container, action: str, **extra: str) -> None: ...

    async def unmount_rootfs(self, c: Container) -> None: ...

    async def record_exit(self, c: Container, *, reason: StopReason | None = None,
                          fallback_code: int = 255) -> None:
        """Record an exit (and apply the restart policy), as if its monitor had reported it."""

    def watch_exit(self, c: Container, watch: ExitWatch | None) -> None:
        """Handle `c`'s exit when the watched monitor reports it."""

    def start_run_tasks(self, c: Container) -> None:
        """Health checks, log rotation and shipping for a running container."""

    def ship_leftover_logs(self, c: Container) -> None:
        """Ship what a container that ended while moord was away logged after the last
        moord shipped (its driver ships lines, and no new run will)."""

    async def finish_removal(self, c: Container, *, volumes: bool = False) -> None: ...

    async def restore_networks(self, container_ids: list[str]) -> None: ...

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None: ...

    async def start_by_policy(self, c: Container) -> None: ...


log = logging.getLogger(__name__)

_KILL_WAIT = 10.0


async def recover(manager: Recoverable) -> None:
    """Reconcile every record, then start what the restart policies say should run.

    Containers are reconciled in parallel (each is a few syscalls and maybe a
    `crun state`), so adopting hundreds of them takes little longer than one. How long
    it took, and what was found, go to the metrics.
    """
    began = time.monotonic()
    resting = [c for c in manager.records() if c.state.status in (Status.EXITED, Status.RESTARTING)]
    limiter = trio.CapacityLimiter(16)

    async def one(c: Container) -> None:
        async with limiter:
            try:
                METRICS.recovered.inc(outcome=await _recover_one(manager, c))
            except Exception:
                log.exception("could not recover container %s", c.short_id, extra=c.log_fields())

    ordered_start.hold_restarts(manager)
    async with trio.open_nursery() as nursery:
        for c in manager.records():
            nursery.start_soon(one, c)
    try:
        await sweep_orphans(manager)
    except Exception:
        log.exception("could not sweep leftover container directories")
    await manager.restore_networks([c.id for c in manager.records() if c.state.is_live])
    METRICS.adoption_seconds.set(time.monotonic() - began)
    due: list[Container] = []
    for c in resting:
        if not manager.recorded(c.id) or c.state.status not in (Status.EXITED, Status.RESTARTING):
            continue
        rebooted = bool(c.state.boot_id) and c.state.boot_id != manager.boot_id
        if policy.starts_at_daemon_start(c.host.restart_policy, c.state, host_rebooted=rebooted):
            log.info("starting %s (restart policy %s)", c.short_id, c.host.restart_policy.name,
                     extra=c.log_fields("restart"))
            due.append(c)
    # each after what it depends on (`moorage.depends-on`); the others at once
    ordered_start.start_all(manager, due)


async def _recover_one(m: Recoverable, c: Container) -> str:
    """Reconcile one record; returns what was done (a metrics label)."""
    if c.build_step:
        return await _remove_build_step(m, c)
    if c.state.status is Status.REMOVING:
        log.info("finishing the removal of %s", c.short_id, extra=c.log_fields())
        await m.finish_removal(c)
        return "removal-finished"
    target = m.target(c)
    watch = await m.runtime.adopt(target, c.state.conmon_pid)
    if watch is not None:
        return await _with_live_conmon(m, c, watch)
    # without its conmon, a container the runtime still knows can't be supervised: end it
    # (a start cut short while `crun create` ran leaves one in "created", process alive)
    crun_state = await m.runtime.state(target)
    if crun_state is not None:
        log.warning("%s has no conmon but the runtime knows it (%s); removing it from the runtime",
                    c.short_id, crun_state.status)
        await m.runtime.delete(target)
    if c.state.status is Status.RESTARTING:
        # its exit is recorded; the restart was pending: the start-up pass starts it
        await m.unmount_rootfs(c)
        return "restart-pending"
    recorded = await m.runtime.exit_status(target)
    was_live = c.state.status in (Status.RUNNING, Status.PAUSED)
    unseen_exit = recorded.code is not None and _unseen(c, recorded.recorded_at)
    if was_live or unseen_exit:
        rebooted = bool(c.state.boot_id) and c.state.boot_id != m.boot_id
        if recorded.code is not None:
            log.info("%s exited (%d) while moord was away", c.short_id, recorded.code,
                     extra=c.log_fields())
            # an exit as the host went down (systemd killing it) is not the container's doing
            await m.record_exit(c, reason=StopReason.HOST_CRASH if rebooted else StopReason.EXITED)
            if c.state.status is Status.EXITED:
                m.ship_leftover_logs(c)
            return "exited-while-away"
        reason = StopReason.HOST_CRASH if rebooted else StopReason.MONITOR_LOST
        log.info("%s: no exit record (%s)", c.short_id, reason.value, extra=c.log_fields())
        # host-crash: 255; monitor-lost: the exit handler kills what is left, 137
        await m.record_exit(c, reason=reason, fallback_code=255)
        return reason.value
    # a stopped container: make sure nothing of a half-finished exit or start is left
    await m.unmount_rootfs(c)
    if c.host.auto_remove:
        # an interrupted `run --rm`: Docker removes such containers at start-up too
        log.info("removing %s (auto-remove, not running)", c.short_id, extra=c.log_fields())
        await m.finish_removal(c)
        return "auto-removed"
    return "stopped"


async def _remove_build_step(m: Recoverable, c: Container) -> str:
    """A build's RUN container outlived the moord whose build it served: that build is
    gone (its client was cut off), so nobody will commit or remove the container. Kill
    what runs, record the exit (`die`, reason `build-abandoned`), and remove it with its
    mounts, cgroup, anonymous volumes and directory, as the build would have."""
    target = m.target(c)
    if c.state.status is not Status.REMOVING:
        watch = await m.runtime.adopt(target, c.state.conmon_pid)
        if watch is not None:
            await _kill_under(m, c, watch)
        if c.state.is_live:
            await m.record_exit(c, reason=StopReason.BUILD_ABANDONED, fallback_code=KILLED)
    log.info("removing %s, a step of a build cut short by moord's end", c.short_id,
             extra=c.log_fields())
    await m.finish_removal(c, volumes=True)
    return "build-step-removed"


async def _kill_under(m: Recoverable, c: Container, watch: ExitWatch) -> None:
    """SIGKILL the container `watch`'s conmon runs, and wait for that conmon to record
    the exit and end (bounded: conmon itself is the last resort)."""
    target = m.target(c)
    try:
        try:
            await m.runtime.kill(target, signal.SIGKILL)
        except EngineError as exc:  # not running (yet, or any more): the delete ends it
            log.debug("killing %s: %s", c.short_id, exc.message)
            await m.runtime.delete(target)
        with trio.move_on_after(_KILL_WAIT):
            await watch.wait()
            return
        await m.runtime.kill_process(watch.monitor_pid)
        with trio.move_on_after(_KILL_WAIT):
            await watch.wait()
    finally:
        watch.close()


async def _with_live_conmon(m: Recoverable, c: Container, watch: ExitWatch) -> str:
    """conmon is alive: re-adopt its container, or roll back a start moord never finished."""
    target = m.target(c)
    state: RuntimeState | None
    if c.state.is_live:
        # the usual case after a moord restart: the record and a verified conmon agree, so
        # no `crun state` per container (a process each: adopting 100 would cost 100); the
        # freezer file says whether a pause or unpause landed after the record was written
        frozen = await m.runtime.frozen(target)
        live = c.state.status.value if frozen is None else ("paused" if frozen else "running")
        state = RuntimeState(status=live, pid=c.state.pid)
    else:
        state = await m.runtime.state(target)
    status = state.status if state is not None else None
    if state is not None and status in ("running", "paused"):
        if not c.state.is_live:
            # started, but moord died before it recorded so: record it now
            c.state.started_at = dt.datetime.now(dt.timezone.utc)
            c.state.has_been_started = True
            c.state.boot_id = m.boot_id
            c.state.exit_code = 0
            c.state.error = ""
            c.state.stop_reason = StopReason.NONE
            m.publish(c, "start")
        before = (c.state.status, c.state.conmon_pid, c.state.pid)
        c.state.status = Status.PAUSED if status == "paused" else Status.RUNNING
        c.state.conmon_pid = watch.monitor_pid
        c.state.pid = state.pid or c.state.pid
        if (c.state.status, c.state.conmon_pid, c.state.pid) != before or c.state.started_at is None:
            await m.save(c)
        log.info("re-adopted %s (%s, conmon %d)", c.short_id, status, watch.monitor_pid,
                 extra=c.log_fields("adopt"))
        m.watch_exit(c, watch)
        m.start_run_tasks(c)
        return "re-adopted"
    if status == "created":
        # moord died between conmon's create and the runtime's start: roll back
        log.info("rolling back the interrupted start of %s", c.short_id, extra=c.log_fields())
        await m.runtime.delete(target)
        with trio.move_on_after(5):
            await watch.wait()
        watch.close()
        await m.unmount_rootfs(c)
        if c.state.status is not Status.RESTARTING:
            c.state.error = "moord stopped while the container was starting"
        await m.save(c)
        if c.host.auto_remove and c.state.status is not Status.RESTARTING:
            await m.finish_removal(c)
        return "rolled-back"
    # conmon alive but the container is stopped: conmon is finishing up
    m.watch_exit(c, watch)
    return "exiting"


async def sweep_orphans(m: Recoverable) -> int:
    """Container directories without a record (a create cut short): unmount and remove."""
    root = m.containers_dir
    known = {c.id for c in m.records()}

    def orphans() -> list[str]:
        try:
            return [e.name for e in root.iterdir() if e.is_dir() and e.name not in known]
        except FileNotFoundError:
            return []

    names = await trio.to_thread.run_sync(orphans)
    for cid in names:
        paths = m.paths(cid)
        await m.runtime.forget(cid)
        await trio.to_thread.run_sync(_remove_orphan, paths.rootfs, paths.root)
        log.info("removed the leftovers of %s, a create that never finished", cid[:12])
    return len(names)


def _remove_orphan(rootfs: Path, root: Path) -> None:
    mounts.unmount(rootfs)
    fsutil.remove_tree(root)


def _unseen(c: Container, exit_recorded_at: float | None) -> bool:
    """An exit recorded after the last exit we recorded: a run we never saw end."""
    if exit_recorded_at is None:
        return False
    recorded = c.state.finished_at or c.created
    return exit_recorded_at > recorded.timestamp() + 0.5
