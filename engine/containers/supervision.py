"""After a container exits: the record, the restart policy and its back-off.

Each run has one monitor task that waits on the runtime's exit watch, then records the
exit: its code (128+signal for a signal death), whether the kernel's OOM killer did it,
and why it happened (`StopReason`: a user's stop or signal, a daemon shutdown, a health
check, or the container itself). The restart policy (`engine.containers.policy`) then
decides: a restart after the back-off, or rest (waking `wait` callers and removing an
auto-remove container); a policy's restart announces itself with `start` alone, as
dockerd's does. A monitor that died without recording an exit (conmon killed) leaves a
process nobody supervises: it is SIGKILLed and the exit recorded as 137 with reason
`monitor-lost`, as dockerd records a task whose containerd shim died. A health check
turning unhealthy acts here too (`--health-on-failure`).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal as signals
from typing import TYPE_CHECKING

import trio

from engine.containers import policy, removal, restart_loop, starting, stopping
from engine.containers.live import Live
from engine.containers.model import Container, Status, StopReason
from engine.errors import EngineError, SystemFailure
from engine.logs.sinks import DRAIN_TIMEOUT
from engine.metrics.catalog import METRICS
from engine.runtime.interface import ExitWatch

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)

#: the status of a container killed by SIGKILL (128 + 9)
KILLED = 128 + signals.SIGKILL
#: runtime states in which the container still has a process
_HAS_PROCESS = ("created", "running", "paused")


async def monitor(m: ContainerManager, c: Container, watch: ExitWatch | None) -> None:
    """Wait for the container's monitor to exit, then record the exit.

    A failure here must never take the other monitors down with it: it is logged.
    """
    if watch is not None:
        try:
            await watch.wait()
        finally:
            watch.close()
    try:
        await handle_exit(m, c)
    except Exception:
        log.exception("handling the exit of %s failed", c.short_id, extra=c.log_fields())


async def handle_exit(m: ContainerManager, c: Container, *, reason: StopReason | None = None,
                      fallback_code: int = 255) -> None:
    """Record an exit the runtime reported (or that we inferred), apply the restart policy."""
    if not m.recorded(c.id):
        return
    live = m.live_of(c)
    run_done = live.end_run_tasks()
    target = m.target(c)
    recorded = await m.runtime.exit_status(target)
    code, oom = recorded.code, recorded.oom
    if code is None:
        code = fallback_code
        if reason is None:
            reason = StopReason.MONITOR_LOST
        if reason is StopReason.MONITOR_LOST:
            # conmon died (a kill -9 of it) without an exit record: nothing may run
            # unsupervised, so the container is killed, and its exit is that kill's (137),
            # as containerd records a task whose shim died (its `shim delete`)
            await _kill_unmonitored(m, c)
            code = KILLED
    if reason is None:
        if live.stop_requested:
            reason = live.stop_reason
        elif _died_of_user_signal(c, live, code):
            reason = StopReason.USER
        else:
            reason = StopReason.EXITED
    try:
        await m.runtime.delete(target)
        await m.unmount_rootfs(c)
        if m.volumes is not None:
            await m.volumes.unmount_after_stop(c.id, c.mounts)
    except SystemFailure as exc:
        # record the exit anyway; the next start or removal retries the cleanup
        log.warning("cleaning up after %s: %s", c.short_id, exc.message, extra=c.log_fields())
    await m.detach_network(c)
    if live.stop_requested and reason is StopReason.EXITED:
        # `docker stop` came while this exit was being recorded: the stop wins, or
        # the policy would restart a container the user just stopped
        reason = live.stop_reason
    st = c.state
    st.exit_code = code
    st.oom_killed = oom
    st.pid = 0
    st.conmon_pid = 0
    st.finished_at = dt.datetime.now(dt.timezone.utc)
    st.stop_reason = reason
    if reason is StopReason.USER:
        st.manually_stopped = True
    wanted = not live.manual_restart and policy.restarts_after_exit(
        c.host.restart_policy, st, shutting_down=m.shutting_down)
    run_seconds = (st.finished_at - st.started_at).total_seconds() if st.started_at else 0.0
    restart = restart_loop.keeps_restarting(st, c.spec.labels, restart=wanted,
                                            run_seconds=run_seconds,
                                            reset_after=live.backoff.reset_after)
    if restart:
        st.status = Status.RESTARTING
        st.restart_count += 1
    else:
        st.status = Status.EXITED
    await m.table.save(c)
    if oom:
        m.publish(c, "oom")
    m.publish(c, "die", exitCode=str(code), execDuration=str(int(run_seconds)),
              reason=reason.value)
    if wanted and not restart:
        restart_loop.announce_broken(m, c)
    live.take_next_exit().fire(code)
    if restart:
        delay = live.backoff.next_delay(run_seconds)
        m.spawn(_restart_after, m, c, delay)
        return
    live.take_stopped().fire(code)
    if run_done is not None:
        # a log shipper drains the file before an auto-remove deletes it
        with trio.move_on_after(DRAIN_TIMEOUT + 1):
            await run_done.wait()
    if c.host.auto_remove and not live.manual_restart and not m.shutting_down:
        try:
            await removal.remove(m, c, force=True)
        except Exception:
            log.exception("auto-removing %s failed", c.short_id, extra=c.log_fields())


async def _kill_unmonitored(m: ContainerManager, c: Container) -> None:
    """SIGKILL what is left of a container whose monitor is gone, and wait until it is
    gone (bounded: the host pid is the last resort). Re-parented to init, its process
    would otherwise run on with no one to log it, record its exit or restart it."""
    target = m.target(c)
    for attempt in range(2):
        state = await m.runtime.state(target)
        if state is None or state.status not in _HAS_PROCESS:
            return
        log.warning("%s lost its monitor while %s; killing it", c.short_id, state.status,
                    extra=c.log_fields())
        try:
            if attempt == 0:
                await m.runtime.kill(target, signals.SIGKILL)
                if state.status == "paused":
                    await m.runtime.resume(target)  # a frozen process can't die of it
            elif state.pid > 0:
                await m.runtime.kill_process(state.pid)
        except EngineError as exc:
            log.warning("killing %s: %s", c.short_id, exc.message, extra=c.log_fields())
        with trio.move_on_after(stopping.KILL_WAIT if attempt == 0 else 2.0):
            await _until_gone(m, c)
            return
    log.warning("%s: its process outlived SIGKILL", c.short_id, extra=c.log_fields())


async def _until_gone(m: ContainerManager, c: Container) -> None:
    """Poll the runtime (no monitor will tell) until `c` has no process."""
    target = m.target(c)
    while True:
        state = await m.runtime.state(target)
        if state is None or state.status not in _HAS_PROCESS:
            return
        await trio.sleep(0.05)


def _died_of_user_signal(c: Container, live: Live, code: int) -> bool:
    """Did the user's `kill -s` end it? Its stop signal: if it died soon after; any
    other signal: only if it died of that very signal (moby#11065, #41302)."""
    if not live.user_signal or trio.current_time() > live.user_signal_deadline:
        return False
    return live.user_signal == stopping.stop_signal(c, None) or code == 128 + live.user_signal


async def _restart_after(m: ContainerManager, c: Container, delay: float) -> None:
    """The restart policy's restart, after its back-off; a stop or removal cancels it."""
    live = m.live_of(c)
    with trio.CancelScope() as scope:
        live.restart_scope = scope
        await trio.sleep(delay)
    if live.restart_scope is scope:
        live.restart_scope = None
    if scope.cancelled_caught or m.shutting_down or c.id in m.restarts_held:
        return  # (held: the start-up pass starts it after its dependencies, ordered_start)
    async with live.op_lock:
        if c.state.status is not Status.RESTARTING or not m.recorded(c.id):
            return
        reason = c.state.stop_reason
        try:
            await starting.start_locked(m, c, reset_restart_state=False)
        except EngineError as exc:
            log.warning("restarting %s failed: %s", c.short_id, exc.message, extra=c.log_fields())
            return
    # its `start` is the one event: dockerd's policy restarts send no `restart` (that one
    # is `docker restart`'s)
    _count_restart(c, reason)


def _count_restart(c: Container, reason: StopReason) -> None:
    """A restart its policy made, by the policy and the reason of the stop before it."""
    METRICS.restarts.inc(policy=c.host.restart_policy.name or "no",
                         reason=reason.value or "none")


async def start_by_policy(m: ContainerManager, c: Container) -> None:
    """Start a container whose restart policy says so at daemon start."""
    live = m.live_of(c)
    try:
        async with live.op_lock:
            if c.state.status not in (Status.EXITED, Status.RESTARTING):
                return
            live.cancel_pending_restart()
            reason = c.state.stop_reason
            await starting.start_locked(m, c, reset_restart_state=False)
        _count_restart(c, reason)  # a `start` event only, as above
    except EngineError as exc:
        log.warning("starting %s by its restart policy failed: %s", c.short_id, exc.message,
                    extra=c.log_fields())


def health_failed(m: ContainerManager, c: Container) -> None:
    """The health check just declared `c` unhealthy: act as `--health-on-failure` says."""
    action = c.spec.health_on_failure
    METRICS.health_actions.inc(action=action if action in ("kill", "restart", "stop") else "none")
    if action in ("kill", "restart", "stop"):
        m.spawn(_act_on_unhealthy, m, c, action)


async def _act_on_unhealthy(m: ContainerManager, c: Container, action: str) -> None:
    live = m.live_of(c)
    try:
        async with live.op_lock:
            if c.state.status is not Status.RUNNING:
                return
            log.info("%s is unhealthy: %s", c.short_id, action, extra=c.log_fields("health_status"))
            if action == "kill":
                live.stop_requested = True
                live.stop_reason = StopReason.HEALTH
                await stopping.kill_and_wait(m, c, live.next_exit)
                return
            live.manual_restart = action == "restart"
            try:
                await stopping.stop_locked(m, c, grace=None, signal=None, reason=StopReason.HEALTH)
                if action == "restart":
                    c.state.restart_count += 1
                    await starting.start_locked(m, c, reset_restart_state=False)
                    m.publish(c, "restart")
            finally:
                live.manual_restart = False
    except EngineError as exc:
        log.warning("acting on the health of %s failed: %s", c.short_id, exc.message,
                    extra=c.log_fields())
