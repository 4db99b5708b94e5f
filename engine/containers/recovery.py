"""Start-up: reconcile container records with what conmon and the kernel say.

moord may have died at any instant (`kill -9`, a crash, a reboot). For each record:
a conmon still alive for it → re-adopt (a new monitor waits on its pidfd); conmon
gone but its exit file there → the container exited while we were away, record it;
neither → the host rebooted (boot id changed: "host-crash") or the monitor was lost,
exit 255 as Docker records an unknown status. A start interrupted between conmon's
create and the runtime's start is rolled back; a removal interrupted is finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from engine.containers import policy
from engine.containers.model import Container, Status, StopReason
from engine.runtime import mounts
from engine.runtime.exits import close_fd, open_conmon_pidfd, read_exit_file, read_pid_file

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
    if c.state.status is Status.RESTARTING:
        # its exit is recorded; the restart was pending: the start-up pass starts it
        await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
        return
    conmon_pid = c.state.conmon_pid or await trio.to_thread.run_sync(
        read_pid_file, paths.userdata / "conmon.pid")
    pidfd = open_conmon_pidfd(conmon_pid, c.id) if conmon_pid else None
    runtime = m.runtime_of(c)
    if pidfd is not None:
        state = await runtime.state(c.id)
        status = (state or {}).get("status")
        if status in ("running", "paused"):
            c.state.status = Status.PAUSED if status == "paused" else Status.RUNNING
            c.state.conmon_pid = conmon_pid
            c.state.pid = int((state or {}).get("pid") or c.state.pid)
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
                from engine.runtime.exits import wait_for_pidfd

                await wait_for_pidfd(pidfd)
            close_fd(pidfd)
            await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)
            c.state.error = "moord stopped while the container was starting"
            await m.registry.save(c)
            return
        # conmon alive but the container is stopped: conmon is finishing up
        m._watch(c, pidfd)
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
        state = await runtime.state(c.id)
        if state and state.get("status") in ("running", "paused"):
            # the container outlived its conmon: we can't supervise it; end it
            log.warning("%s runs without its conmon; killing it", c.short_id)
            try:
                await runtime.kill(c.id, "KILL")
            except Exception:
                pass
        reason = StopReason.HOST_CRASH if rebooted else StopReason.MONITOR_LOST
        log.info("%s: no exit record (%s)", c.short_id, reason.value)
        await m.handle_exit(c, reason=reason, fallback_code=255)
        return
    # a stopped container: make sure nothing of a half-finished exit is left mounted
    await trio.to_thread.run_sync(mounts.unmount, paths.rootfs)


def _exit_file_is_newer(c: Container, exit_file: Path) -> bool:
    """An exit file newer than the last exit we recorded: a run we never saw end."""
    try:
        mtime = exit_file.stat().st_mtime
    except FileNotFoundError:
        return False
    recorded = c.state.finished_at or c.created
    return mtime > recorded.timestamp() + 0.5
