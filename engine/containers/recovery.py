"""Start-up: reconcile container records with what conmon and the kernel say.

moord may have died at any instant (`kill -9`, a crash, a reboot). For each record:
a conmon still alive for it → re-adopt (a new monitor waits on its pidfd); conmon
gone but its exit file there → the container exited while we were away, record it;
neither → the host rebooted (boot id changed: "host-crash") or the monitor was lost,
exit 255 as Docker records an unknown status. A start interrupted between conmon's
create and the runtime's start is rolled back; a removal interrupted is finished.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from engine import fsutil
from engine.containers import policy
from engine.containers.model import Container, Status, StopReason
from engine.runtime import cgroups, mounts
from engine.runtime.exits import (
    close_fd,
    open_conmon_pidfd,
    read_exit_file,
    read_pid_file,
    wait_for_pidfd,
)
from engine.runtime.oci import OCIRuntime

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)


async def recover(manager: ContainerManager) -> None:
    """Reconcile every record, then start what the restart policies say should run.

    Containers are reconciled in parallel (each is a few syscalls and maybe a
    `crun state`), so adopting hundreds of them takes little longer than one.
    """
    resting = [c for c in manager.registry if c.state.status in (Status.EXITED, Status.RESTARTING)]
    limiter = trio.CapacityLimiter(16)

    async def one(c: Container) -> None:
        async with limiter:
            try:
                await _recover_one(manager, c)
            except Exception:
                log.exception("could not recover container %s", c.short_id)

    async with trio.open_nursery() as nursery:
        for c in list(manager.registry):
            nursery.start_soon(one, c)
    try:
        await sweep_orphans(manager)
    except Exception:
        log.exception("could not sweep leftover container directories")
    if manager.networks is not None:
        await manager.networks.restore([c.id for c in manager.registry if c.state.is_live])
    for c in resting:
        if c.id not in manager.registry.by_id or c.state.status not in (Status.EXITED,
                                                                         Status.RESTARTING):
            continue
        rebooted = bool(c.state.boot_id) and c.state.boot_id != manager.host.boot_id
        if policy.starts_at_daemon_start(c.host.restart_policy, c.state, host_rebooted=rebooted):
            log.info("starting %s (restart policy %s)", c.short_id, c.host.restart_policy.name)
            manager.spawn(manager.start_by_policy, c)


async def _recover_one(m: ContainerManager, c: Container) -> None:
    paths = m.paths(c)
    if c.state.status is Status.REMOVING:
        log.info("finishing the removal of %s", c.short_id)
        await m._remove_locked(c)
        return
    conmon_pid = c.state.conmon_pid or await trio.to_thread.run_sync(
        read_pid_file, paths.userdata / "conmon.pid")
    pidfd = open_conmon_pidfd(conmon_pid, c.id) if conmon_pid else None
    if pidfd is not None:
        await _with_live_conmon(m, c, conmon_pid, pidfd)
        return
    runtime = m.runtime_of(c)
    # without its conmon, a container the runtime still knows can't be supervised: end it
    # (a start cut short while `crun create` ran leaves one in "created", process alive)
    crun_state = await runtime.state(c.id) if await trio.to_thread.run_sync(
        (runtime.root / c.id).exists) else None
    if crun_state is not None:
        log.warning("%s has no conmon but the runtime knows it (%s); removing it from the runtime",
                    c.short_id, crun_state.get("status"))
        await runtime.delete(c.id, force=True)
    if c.state.status is Status.RESTARTING:
        # its exit is recorded; the restart was pending: the start-up pass starts it
        await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        return
    exit_code = await trio.to_thread.run_sync(read_exit_file, paths.userdata)
    was_live = c.state.status in (Status.RUNNING, Status.PAUSED)
    unseen_exit = exit_code is not None and await trio.to_thread.run_sync(
        _exit_file_is_newer, c, paths.userdata / "exit")
    if was_live or unseen_exit:
        rebooted = bool(c.state.boot_id) and c.state.boot_id != m.host.boot_id
        if exit_code is not None:
            log.info("%s exited (%d) while moord was away", c.short_id, exit_code)
            # an exit as the host went down (systemd killing it) is not the container's doing
            await m.handle_exit(c, reason=StopReason.HOST_CRASH if rebooted else StopReason.EXITED)
            return
        reason = StopReason.HOST_CRASH if rebooted else StopReason.MONITOR_LOST
        log.info("%s: no exit record (%s)", c.short_id, reason.value)
        await m.handle_exit(c, reason=reason, fallback_code=255)
        return
    # a stopped container: make sure nothing of a half-finished exit or start is left
    await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
    if c.host.auto_remove:
        # an interrupted `run --rm`: Docker removes such containers at start-up too
        log.info("removing %s (auto-remove, not running)", c.short_id)
        await m._remove_locked(c)


async def _with_live_conmon(m: ContainerManager, c: Container, conmon_pid: int,
                            pidfd: int) -> None:
    """conmon is alive: re-adopt its container, or roll back a start moord never finished."""
    paths = m.paths(c)
    runtime = m.runtime_of(c)
    if c.state.is_live:
        # the usual case after a moord restart: the record and a verified conmon agree, so
        # no `crun state` per container (a process each: adopting 100 would cost 100); the
        # freezer file says whether a pause or unpause landed after the record was written
        frozen = await trio.to_thread.run_sync(cgroups.is_frozen, m.host.cgroups,
                                               m.cgroup_path(c))
        live = c.state.status.value if frozen is None else ("paused" if frozen else "running")
        state: dict[str, object] | None = {"status": live, "pid": c.state.pid}
    else:
        state = await runtime.state(c.id)
    status = (state or {}).get("status")
    if status in ("running", "paused"):
        if not c.state.is_live:
            # started, but moord died before it recorded so: record it now
            c.state.started_at = dt.datetime.now(dt.timezone.utc)
            c.state.has_been_started = True
            c.state.boot_id = m.host.boot_id
            c.state.exit_code = 0
            c.state.error = ""
            c.state.stop_reason = StopReason.NONE
            m.publish(c, "start")
        before = (c.state.status, c.state.conmon_pid, c.state.pid)
        c.state.status = Status.PAUSED if status == "paused" else Status.RUNNING
        c.state.conmon_pid = conmon_pid
        c.state.pid = int(str((state or {}).get("pid") or c.state.pid))
        if (c.state.status, c.state.conmon_pid, c.state.pid) != before or c.state.started_at is None:
            await m.registry.save(c)
        log.info("re-adopted %s (%s, conmon %d)", c.short_id, status, conmon_pid)
        m._watch(c, pidfd)
        m.start_run_tasks(c)
        return
    if status == "created":
        # moord died between conmon's create and the runtime's start: roll back
        log.info("rolling back the interrupted start of %s", c.short_id)
        await runtime.delete(c.id, force=True)
        with trio.move_on_after(5):
            await wait_for_pidfd(pidfd)
        close_fd(pidfd)
        await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        if c.state.status is not Status.RESTARTING:
            c.state.error = "moord stopped while the container was starting"
        await m.registry.save(c)
        if c.host.auto_remove and c.state.status is not Status.RESTARTING:
            await m._remove_locked(c)
        return
    # conmon alive but the container is stopped: conmon is finishing up
    m._watch(c, pidfd)


async def sweep_orphans(m: ContainerManager) -> int:
    """Container directories without a record (a create cut short): unmount and remove."""
    root = m.config.data_root / "containers"
    known = set(m.registry.by_id)

    def orphans() -> list[str]:
        try:
            return [e.name for e in root.iterdir() if e.is_dir() and e.name not in known]
        except FileNotFoundError:
            return []

    names = await trio.to_thread.run_sync(orphans)
    for cid in names:
        paths = m.paths(cid)
        for info in m.host.runtimes.values():
            if info.usable:
                await OCIRuntime(info.name, info.path, m.config.exec_root / info.name).delete(
                    cid, force=True)
        await trio.to_thread.run_sync(_remove_orphan, paths.rootfs, paths.root)
        log.info("removed the leftovers of %s, a create that never finished", cid[:12])
    return len(names)


def _remove_orphan(rootfs: Path, root: Path) -> None:
    mounts.unmount(rootfs)
    fsutil.remove_tree(root)


def _exit_file_is_newer(c: Container, exit_file: Path) -> bool:
    """An exit file newer than the last exit we recorded: a run we never saw end."""
    try:
        mtime = exit_file.stat().st_mtime
    except FileNotFoundError:
        return False
    recorded = c.state.finished_at or c.created
    return mtime > recorded.timestamp() + 0.5
