"""What moord keeps in memory beside each container record: locks, waiters, timers."""

from __future__ import annotations

import attrs
import trio

from engine.containers.model import StopReason
from engine.containers.policy import Backoff


@attrs.define(eq=False)
class ExitNotice:
    """Fires once (at an exit, a coming to rest, or a removal), carrying the exit code."""

    event: trio.Event = attrs.field(factory=trio.Event)
    exit_code: int = 0
    error: str = ""

    def fire(self, exit_code: int, error: str = "") -> None:
        if self.event.is_set():
            return
        self.exit_code = exit_code
        self.error = error
        self.event.set()


@attrs.frozen
class WaitResult:
    status_code: int
    error: str = ""


@attrs.define(eq=False)
class Live:
    """In-memory companions of one container record."""

    op_lock: trio.Lock = attrs.field(factory=trio.Lock)
    # every exit, even one a restart policy will undo (`wait --condition next-exit`)
    next_exit: ExitNotice = attrs.field(factory=ExitNotice)
    # coming to rest: exited with no restart pending (`wait`, `not-running`)
    stopped: ExitNotice = attrs.field(factory=ExitNotice)
    removed: ExitNotice = attrs.field(factory=ExitNotice)
    # why the coming exit happens, when moord or a user caused it
    stop_requested: bool = False
    stop_reason: StopReason = StopReason.USER
    # a user's signal counts as a stop if the container dies of it before this (trio clock)
    user_signal: int = 0
    user_signal_deadline: float = 0.0
    manual_restart: bool = False
    backoff: Backoff = attrs.field(factory=Backoff)
    restart_scope: trio.CancelScope | None = None
    # the tasks that live as long as one run: health checks, log rotation and shipping
    run_scope: trio.CancelScope | None = None
    run_done: trio.Event | None = None  # set when those tasks have all ended

    def take_next_exit(self) -> ExitNotice:
        notice, self.next_exit = self.next_exit, ExitNotice()
        return notice

    def take_stopped(self) -> ExitNotice:
        notice, self.stopped = self.stopped, ExitNotice()
        return notice

    def cancel_pending_restart(self) -> bool:
        if self.restart_scope is None:
            return False
        self.restart_scope.cancel()
        self.restart_scope = None
        return True

    def end_run_tasks(self) -> trio.Event | None:
        """Cancel the run's tasks; the returned event fires once they have finished (a log
        shipper first drains what the container wrote)."""
        done = self.run_done
        if self.run_scope is not None:
            self.run_scope.cancel()
            self.run_scope = None
        self.run_done = None
        return done
