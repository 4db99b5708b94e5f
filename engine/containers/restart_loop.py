"""One container's restart back-off, and the breaker that ends a restart loop.

The back-off is the daemon's (`restart-delay-*`) with the container's labels over it
(engine/containers/restart_labels.py). The breaker: a *quick failure* is a run shorter
than the back-off's reset window that ended in failure (a non-zero exit, or a health
check's kill); after `moorage.restart.max-quick-failures` of them in a row the policy's
restart is called off. The container then rests as `exited` with `State.Error` saying
why, `State.RestartLoopBroken` true, a `restart-loop-broken` event (`quickFailures`,
`exitCode`) and `moorage_restart_loops_broken_total` + 1. The count and the flag are in
the record, so a moord restart neither forgets the count nor starts a broken loop again;
a user's `start` or `restart` clears both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.containers.model import Container, ContainerState, StopReason
from engine.containers.policy import Backoff
from engine.containers.restart_labels import RestartTuning, tuning_of
from engine.durations import SECOND, format_duration
from engine.metrics.catalog import METRICS

if TYPE_CHECKING:
    from engine.config import DaemonConfig
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)

BROKEN_ACTION = "restart-loop-broken"


def backoff_for(config: DaemonConfig, labels: Mapping[str, str]) -> Backoff:
    """A new container's back-off: the daemon's settings, its labels over them."""
    backoff = Backoff()
    retune(backoff, config, labels)
    return backoff


def retune(backoff: Backoff, config: DaemonConfig, labels: Mapping[str, str]) -> None:
    """Apply (reloaded) daemon settings under the container's labels; keeps the current step."""
    tuning = tuning_of(labels)
    backoff.initial, backoff.maximum, backoff.reset_after = tuning.delays(
        config.restart_delay_initial, config.restart_delay_max, config.restart_delay_reset)
    backoff.jitter = tuning.jitter


def is_quick_failure(st: ContainerState, run_seconds: float, reset_after: float) -> bool:
    """A run shorter than the reset window that ended in failure (`st` holds its exit)."""
    failed = st.exit_code != 0 or st.stop_reason is StopReason.HEALTH
    return failed and run_seconds < reset_after


def keeps_restarting(st: ContainerState, labels: Mapping[str, str], *, restart: bool,
                     run_seconds: float, reset_after: float) -> bool:
    """Count this exit's quick failure (or end the streak) and decide whether the policy's
    restart still happens; False when the breaker trips (`st` then says so)."""
    if not restart:
        return False
    if not is_quick_failure(st, run_seconds, reset_after):
        st.quick_failures = 0
        return True
    st.quick_failures += 1
    limit = tuning_of(labels).max_quick_failures
    if not limit or st.quick_failures < limit:
        return True
    st.restart_loop_broken = True
    st.error = (f"restart loop broken: {st.quick_failures} quick failures in a row (each run "
                f"shorter than {format_duration(round(reset_after * SECOND))}), last exit code "
                f"{st.exit_code}; not restarting until started again")
    return False


def announce_broken(m: ContainerManager, c: Container) -> None:
    """After the `die` event of the exit that tripped the breaker: its event, counter, log."""
    st = c.state
    log.warning("%s: %s", c.short_id, st.error, extra=c.log_fields())
    METRICS.restart_loops_broken.inc(policy=c.host.restart_policy.name or "no")
    m.publish(c, BROKEN_ACTION, quickFailures=str(st.quick_failures), exitCode=str(st.exit_code))


def forget(st: ContainerState) -> None:
    """A user's start or restart: a new streak, the breaker closed again."""
    st.quick_failures = 0
    st.restart_loop_broken = False


__all__ = ["BROKEN_ACTION", "RestartTuning", "announce_broken", "backoff_for", "forget",
           "is_quick_failure", "keeps_restarting", "retune"]
