"""What runs beside a running container, for as long as one run lasts.

Health checks, log rotation, the watch on the log's disk (output lost to a full disk is
reported: `engine.logs.diskwatch`) and log shipping to a driver that wants the lines. They
run in one cancel scope per run, started after a start or a re-adoption and cancelled
when the exit is handled; each one's failure is logged and stays its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from engine.containers.health import (
    RuntimeExecutor,
    Timing,
    label_probe,
    run_checks,
    run_health_checks,
)
from engine.containers.model import Container
from engine.containers.netprobe import NetProber
from engine.logs.diskwatch import watch_disk
from engine.logs.gaps import GAPS, LogGap
from engine.logs.rotation import RotationPolicy, keep_rotated
from engine.logs.sinks import ship_lines
from engine.metrics.catalog import METRICS
from plugins.contracts import LoggedContainer

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)


def keeps_log_file(m: ContainerManager, c: Container) -> bool:
    """Does conmon write the log file (a driver reads or ships it), or discard the output?"""
    driver = m.log_drivers.get(c.host.log_config.type)
    return driver is None or driver.readable or driver.ships


def rotation_policy(m: ContainerManager, c: Container) -> RotationPolicy:
    return RotationPolicy.from_options(c.host.log_config.config,
                                       default_size=m.config.log_max_size,
                                       default_files=m.config.log_max_file)


def start_run_tasks(m: ContainerManager, c: Container) -> None:
    """Start this run's tasks (ending the previous run's, if any are left)."""
    live = m.live_of(c)
    live.end_run_tasks()
    scope = trio.CancelScope()
    live.run_scope = scope
    live.run_done = done = trio.Event()
    m.spawn(_run_tasks, m, c, scope, done)


async def _run_tasks(m: ContainerManager, c: Container, scope: trio.CancelScope,
                     done: trio.Event) -> None:
    try:
        await _run_tasks_in(m, c, scope)
    finally:
        done.set()


async def _run_tasks_in(m: ContainerManager, c: Container, scope: trio.CancelScope) -> None:
    paths = m.paths(c)
    target = m.target(c)
    driver = m.log_drivers.get(c.host.log_config.type)
    with scope:
        async with trio.open_nursery() as nursery:
            if c.state.health is not None:
                nursery.start_soon(_guarded, "health checks", c, health_checks(m, c))
            if keeps_log_file(m, c):

                async def reopen() -> bool:
                    METRICS.log_rotations.inc(container=c.short_id)
                    return await m.runtime.reopen_log(target)

                nursery.start_soon(_guarded, "log rotation", c, partial(
                    keep_rotated, paths.log, reopen, rotation_policy(m, c)))
                nursery.start_soon(_guarded, "log disk watch", c, partial(
                    watch_disk, paths.log, GAPS, opened=partial(_gap_opened, c),
                    closed=partial(_gap_closed, m, c)))
            if driver is not None and driver.ships:
                # everything not shipped yet, across runs and moord restarts
                logged = _logged(c)
                nursery.start_soon(_guarded, "log shipping", c, partial(
                    ship_lines, driver, logged, paths.log, 0,
                    paths.userdata / f"shipped.{driver.name}"))


#: The container event of a closed log gap. Not one of dockerd's actions: clients that
#: switch on the actions they know (the CLI, docker-py, compose) pass it by.
LOG_GAP_ACTION = "log_gap"


def _gap_opened(c: Container, gap: LogGap) -> None:
    log.warning("container %s (%s): the disk holding its log is full: its output is being "
                "lost (log file offset %d)", c.short_id, c.name, gap.offset,
                extra=c.log_fields(LOG_GAP_ACTION))


def _gap_closed(m: ContainerManager, c: Container, gap: LogGap) -> None:
    """A gap is over: say so in moord's log, as an event and in the metrics."""
    text = gap.marker_text().decode().strip()
    log.warning("container %s (%s): %s (log file offset %d)", c.short_id, c.name, text,
                gap.offset, extra=c.log_fields(LOG_GAP_ACTION))
    METRICS.log_gaps.inc(container=c.short_id)
    METRICS.log_gap_seconds.inc((gap.until_ns - gap.since_ns) / 1e9, container=c.short_id)
    m.publish(c, LOG_GAP_ACTION, since=str(gap.since_ns), until=str(gap.until_ns),
              tornBytes=str(gap.torn))


def _logged(c: Container) -> LoggedContainer:
    """What a shipping driver is told about the container whose lines it gets."""
    return LoggedContainer(c.id, c.name, c.spec.image, dict(c.spec.labels),
                           dict(c.host.log_config.config))


async def ship_leftover(m: ContainerManager, c: Container) -> None:
    """Ship the unshipped end of the log of a container that ended while moord was away:
    the shipper is cancelled before it starts, which makes it read to the end of the file
    (within its drain deadline) and stop."""
    driver = m.log_drivers.get(c.host.log_config.type)
    if driver is None or not driver.ships:
        return
    paths = m.paths(c)
    logged = _logged(c)
    with trio.CancelScope() as scope:
        scope.cancel()
        await _guarded("log shipping", c, partial(
            ship_lines, driver, logged, paths.log, 0, paths.userdata / f"shipped.{driver.name}"))


async def _guarded(what: str, c: Container, fn: Callable[[], Awaitable[object]]) -> None:
    """Run one of a container's companion tasks; its failure stays its own."""
    try:
        await fn()
    except Exception:
        log.exception("the %s of %s failed", what, c.short_id)


def health_checks(m: ContainerManager, c: Container) -> Callable[[], Awaitable[None]]:
    """`c`'s health task: the engine-run probe its labels ask for, else its Docker check."""
    spec = label_probe(c.spec)
    if spec is None:
        return partial(run_health_checks, m, c, execute=probe_executor(m, c))
    prober = NetProber(spec.target, lambda: f"/proc/{c.state.pid}/ns/net",
                       partial(_going_down, m, c))
    return partial(run_checks, m, c, Timing.of(spec), prober)


def probe_executor(m: ContainerManager, c: Container) -> RuntimeExecutor:
    """Health probes run by the OCI runtime inside `c`."""
    return RuntimeExecutor(c, m.runtime.command_line(c.runtime), m.paths(c).config_json,
                           m.config.exec_root / "exec", partial(_going_down, m, c))


async def _going_down(m: ContainerManager, c: Container) -> bool:
    """Is the container being stopped, or no longer running (or paused) at all?"""
    live = m.live.get(c.id)
    if live is None or live.stop_requested:
        return True
    state = await m.runtime.state(m.target(c))
    return state is None or state.status != "running"
