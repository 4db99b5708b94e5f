"""Stopping and killing: the stop signal, the grace period, then SIGKILL.

A stop marks the coming exit as requested (and why), sends the stop signal (the
container's or the image's, SIGTERM by default), waits the grace period (`-t`, the
container's `--stop-timeout`, 10 s) for the exit to be handled, then kills. A paused
container is thawed after the signal: a frozen one cannot act on it (crun 1.8 cannot
even SIGKILL it). A `kill` with another signal counts as the user's stop only if the
container dies of it (`supervision`). A restarting container has no process: stopping
it cancels the pending restart.
"""

from __future__ import annotations

import logging
import signal as signals
from typing import TYPE_CHECKING

import trio

from engine.containers.live import ExitNotice
from engine.containers.model import Container, Status, StopReason
from engine.containers.signals import parse_signal
from engine.errors import Conflict, NotModified, SystemFailure
from engine.runtime.interface import ContainerGone

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 10.0
USER_SIGNAL_WINDOW = 10.0  # a container dying this soon after a user's signal died of it


def stop_signal(c: Container, override: str | None) -> int:
    return parse_signal(override or c.spec.stop_signal or "SIGTERM")


async def stop(m: ContainerManager, c: Container, *, grace: int | None,
               signal: str | None) -> None:
    live = m.live_of(c)
    async with live.op_lock:
        if c.state.status is Status.RESTARTING:
            await _come_to_rest(m, c, StopReason.USER)
            return
        await stop_locked(m, c, grace=grace, signal=signal)


async def stop_locked(m: ContainerManager, c: Container, *, grace: int | None,
                      signal: str | None, reason: StopReason = StopReason.USER) -> None:
    """Stop signal, `grace` seconds (None: the container's or 10; -1: for ever), SIGKILL."""
    if not c.state.is_live:
        raise NotModified()
    live = m.live_of(c)
    sig = stop_signal(c, signal)
    if grace is None:
        grace = c.spec.stop_timeout if c.spec.stop_timeout is not None else DEFAULT_STOP_TIMEOUT
    notice = live.next_exit
    live.stop_requested = True
    live.stop_reason = reason
    wait: float = grace if grace >= 0 else float("inf")
    m.publish(c, "kill", signal=str(sig))
    try:
        await _signal(m, c, sig)
    except ContainerGone:
        pass
    except SystemFailure as exc:
        log.warning("sending %s to %s failed: %s", sig, c.short_id, exc.message)
        wait = min(wait, 2.0)
    with trio.move_on_after(wait):
        await notice.event.wait()
        m.publish(c, "stop")
        return
    await kill_and_wait(m, c, notice)
    m.publish(c, "stop")


async def _signal(m: ContainerManager, c: Container, sig: int) -> None:
    target = m.target(c)
    await m.runtime.kill(target, sig)
    if c.state.status is Status.PAUSED:
        # a frozen container can't act on the signal (crun 1.8 can't even SIGKILL it)
        await m.runtime.resume(target)
        c.state.status = Status.RUNNING
        await m.table.save(c)


async def kill_and_wait(m: ContainerManager, c: Container, notice: ExitNotice) -> None:
    """SIGKILL, and wait until the exit is handled; the host pid is the last resort."""
    m.publish(c, "kill", signal=str(int(signals.SIGKILL)))
    try:
        await _signal(m, c, signals.SIGKILL)
    except ContainerGone:
        pass
    with trio.move_on_after(KILL_WAIT):
        await notice.event.wait()
        return
    pid = c.state.pid
    if pid > 0:
        await m.runtime.kill_process(pid)
    with trio.move_on_after(2.0):
        await notice.event.wait()
        return
    raise SystemFailure("tried to kill container, but did not receive an exit event")


async def kill(m: ContainerManager, c: Container, signal: str | None) -> None:
    sig = parse_signal(signal, default="SIGKILL")
    live = m.live_of(c)
    not_running = Conflict(f"Cannot kill container: {c.id}: container {c.id} is not running")
    if c.state.status is Status.RESTARTING and sig in (signals.SIGKILL, stop_signal(c, None)):
        async with live.op_lock:
            await _come_to_rest(m, c, StopReason.USER)
        return
    if not c.state.is_live and live.op_lock.locked():
        # a start is finishing (the process may already run and print): dockerd's kill
        # waits for the container's lock, so a signal the docker CLI proxies as the
        # process comes up is delivered, not refused; then decide on what the start left
        async with live.op_lock:
            pass
    if not c.state.is_live:
        raise not_running
    if sig == signals.SIGKILL:
        live.stop_requested = True
        live.stop_reason = StopReason.USER
        await kill_and_wait(m, c, live.next_exit)
        return
    # counts as a user stop only if the container dies of it (see supervision)
    live.user_signal = sig
    live.user_signal_deadline = trio.current_time() + USER_SIGNAL_WINDOW
    m.publish(c, "kill", signal=str(sig))
    try:
        await _signal(m, c, sig)
    except ContainerGone:
        raise not_running from None


async def _come_to_rest(m: ContainerManager, c: Container, reason: StopReason) -> None:
    """A restarting container is stopped: cancel its pending restart."""
    live = m.live_of(c)
    live.cancel_pending_restart()
    c.state.status = Status.EXITED
    c.state.stop_reason = reason
    if reason is StopReason.USER:
        c.state.manually_stopped = True
    await m.table.save(c)
    live.take_stopped().fire(c.state.exit_code)
    m.publish(c, "stop")


async def stop_all(m: ContainerManager) -> None:
    """Stop every live container in parallel, each with its own grace period."""
    m.shutting_down = True
    async with trio.open_nursery() as nursery:
        for c in m.records():
            live = m.live.get(c.id)
            if live is not None:
                live.cancel_pending_restart()
            if c.state.is_live:
                nursery.start_soon(_stop_for_shutdown, m, c)


async def _stop_for_shutdown(m: ContainerManager, c: Container) -> None:
    try:
        live = m.live_of(c)
        async with live.op_lock:
            await stop_locked(m, c, grace=None, signal=None, reason=StopReason.DAEMON_SHUTDOWN)
    except NotModified:
        pass
    except Exception:
        log.exception("stopping %s at shutdown failed", c.short_id)
