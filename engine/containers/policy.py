"""Restart policies: whether a container rises again, and after how long.

Docker's rules, with the fixes its users ask for (see docs/supervision.md):

- only a user's stop, or a user's signal that actually ended the container, counts
  as a manual stop (a `kill -s HUP` the container survives changes nothing);
- `on-failure` restarts a container that failed by itself (or was killed by its
  health check), never one stopped by a daemon shutdown or a host going down;
- `unless-stopped` comes back after daemon and host restarts unless a user stopped it;
- `always` comes back after a host restart even if a user stopped it (Docker's
  documented behaviour, since its daemon restarts with the host).

Back-off as Docker's: 100 ms, doubling, capped at one minute, back to the start once
a run lasted ten seconds; the three numbers are daemon settings, which labels override
per container, with a jitter (engine/containers/restart_labels.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from engine.containers.model import ContainerState, RestartPolicy, Status, StopReason
from engine.errors import InvalidParameter

NO_RESTART = frozenset({"", "no"})
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")


def check_restart_policy(policy: RestartPolicy) -> None:
    """Refuse a policy dockerd refuses, at create and at update, in its words ("" is
    what dockerd before 25.0 stored for "no", so it passes with any count, as there)."""
    count = policy.maximum_retry_count
    if policy.name == "on-failure":
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    elif policy.name in RESTART_POLICIES:
        if count:
            raise InvalidParameter(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                + (" and cannot be negative" if count < 0 else ""))
    elif policy.name != "":
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{policy.name}'; use one of "
            "'no', 'always', 'on-failure', or 'unless-stopped'")


def restarts_after_exit(policy: RestartPolicy, state: ContainerState, *, shutting_down: bool) -> bool:
    """Decide at an exit (state already holds its code and reason) whether to restart."""
    if shutting_down or policy.name in NO_RESTART:
        return False
    reason = state.stop_reason
    if reason in (StopReason.USER, StopReason.DAEMON_SHUTDOWN) or state.manually_stopped:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure":
        if reason not in (StopReason.EXITED, StopReason.HEALTH, StopReason.MONITOR_LOST):
            return False
        if state.exit_code == 0 and reason is not StopReason.HEALTH:
            return False
        limit = policy.maximum_retry_count
        return limit == 0 or state.restart_count < limit
    return False


def starts_at_daemon_start(policy: RestartPolicy, state: ContainerState, *, host_rebooted: bool) -> bool:
    """Decide, for a stopped container found at start-up, whether to start it now."""
    if policy.name in NO_RESTART or not state.has_been_started or state.restart_loop_broken:
        return False
    if state.status is Status.RESTARTING:
        return True  # a restart was pending when moord went away
    if state.status is not Status.EXITED:
        return False
    if policy.name == "always":
        return host_rebooted or not state.manually_stopped
    if policy.name == "unless-stopped":
        return not state.manually_stopped
    return False


@attrs.define
class Backoff:
    """The delay before the next restart of one container. `jitter` (0-1) shortens each
    delay by up to that share of it, drawn from `random` (injectable for tests)."""

    initial: float = 0.1
    maximum: float = 60.0
    reset_after: float = 10.0
    current: float = 0.0
    jitter: float = 0.0
    random: Callable[[], float] = attrs.field(default=random.random, repr=False)

    def next_delay(self, run_seconds: float) -> float:
        if run_seconds >= self.reset_after:
            self.current = 0.0
        self.current = self.initial if self.current == 0.0 else min(self.current * 2, self.maximum)
        return self.current * (1.0 - self.jitter * self.random())

    def reset(self) -> None:
        self.current = 0.0
