"""Health checks, as Docker runs them (moby's daemon/health.go), and what follows from them.

The manager starts a health task when a container with a health check starts, and
cancels it when the container exits or is removed. The task (`run_checks`, the one loop
for both kinds of check) sleeps an interval, runs the check: a Docker health check's
command inside the container (`run_health_checks`, `RuntimeExecutor`,
`engine.runtime.exec`) or an engine-run HTTP/TCP probe from the host
(`engine.containers.netprobe`, asked for by labels: `label_probe`), keeps
the last five results and the failing streak in `c.state.health`, and on each change of
status tells its `HealthReceiver` (the manager): persist the record, publish
`health_status: <status>` and, on turning unhealthy, act (`--health-on-failure`).

Docker's rules: exit 0 is healthy, anything else (including a probe that could not
run, exit -1) a failure; `retries` consecutive failures make it unhealthy; failures
inside the start period don't count (a success still makes it healthy), and while it
is still starting there, probes come every start interval. A paused container is not
probed. The probe results themselves are only persisted with a status change: inspect
shows the in-memory record, which is current.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from engine.containers.execenv import exec_environment
from engine.containers.model import (
    Container,
    ContainerSpec,
    HealthProbe,
    HealthState,
    HealthStatus,
    Status,
)
from engine.containers.probelabels import ProbeLabelError, ProbeSpec, probe_from_labels
from engine.durations import format_duration
from engine.images.model import Healthcheck
from engine.metrics.catalog import METRICS
from engine.runtime.exec import (
    ExecResult,
    exec_capture,
    read_process_template,
    remove_stale_scratch,
)
from engine.runtime.oci import OCIRuntime

log = logging.getLogger(__name__)

SECOND_NS = 1_000_000_000
DEFAULT_INTERVAL_NS = 30 * SECOND_NS
DEFAULT_TIMEOUT_NS = 30 * SECOND_NS
DEFAULT_START_PERIOD_NS = 0
DEFAULT_START_INTERVAL_NS = 5 * SECOND_NS
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096  # bytes of a probe's output kept (moby's maxOutputLen)
DEFAULT_SHELL = ("/bin/sh", "-c")

# Runs one probe: argv, and seconds after which it is killed → the result, or None when there is no verdict
# (the container stopped running under it).
Executor = Callable[[list[str], float], Awaitable["ExecResult | None"]]
# Runs one check of any kind (a command, an engine-run probe): seconds it may take → as Executor.
Check = Callable[[float], Awaitable["ExecResult | None"]]


class HealthReceiver(Protocol):
    """Where a health check's verdicts go (the container manager is one)."""

    async def save(self, c: Container) -> None:
        """Persist the record (its health changed)."""

    def publish(self, c: Container, action: str, **extra: str) -> None:
        """A container event: `health_status: <status>`."""

    def health_failed(self, c: Container) -> None:
        """`c` just turned unhealthy: act as its `--health-on-failure` says."""


def probe_command(hc: Healthcheck | None, shell: Sequence[str] | None = None) -> list[str] | None:
    """The argv a health check runs; None when there is nothing to run (none, NONE, unknown)."""
    if hc is None or not hc.test:
        return None
    kind, args = hc.test[0], list(hc.test[1:])
    if kind == "CMD":
        return args or None
    if kind == "CMD-SHELL":
        return [*(shell or DEFAULT_SHELL), *args] if args else None
    return None


def has_probe(hc: Healthcheck | None) -> bool:
    """Whether a container with this health check gets a health status at all."""
    return probe_command(hc) is not None


def label_probe(spec: ContainerSpec) -> ProbeSpec | None:
    """The engine-run probe the container's labels ask for (`moorage.health.http`, …).

    Create refuses bad labels; a record that still has one (made before moorage read
    them) gets no probe, and a warning, rather than a failed start.
    """
    try:
        return probe_from_labels(spec.labels)
    except ProbeLabelError as exc:
        log.warning("no engine-run probe: %s", exc.message)
        return None


def has_health_check(spec: ContainerSpec) -> bool:
    """Whether a container gets a health status: a Docker health check or a probe label."""
    return has_probe(spec.healthcheck) or label_probe(spec) is not None


@attrs.frozen
class Timing:
    """A health check's durations in seconds, Docker's defaults filled in for zeros."""

    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int
    timeout_ns: int

    @classmethod
    def of(cls, hc: Healthcheck | ProbeSpec) -> Timing:
        timeout_ns = hc.timeout or DEFAULT_TIMEOUT_NS
        return cls(
            interval=(hc.interval or DEFAULT_INTERVAL_NS) / SECOND_NS,
            timeout=timeout_ns / SECOND_NS,
            start_period=(hc.start_period or DEFAULT_START_PERIOD_NS) / SECOND_NS,
            start_interval=(hc.start_interval or DEFAULT_START_INTERVAL_NS) / SECOND_NS,
            retries=hc.retries if hc.retries > 0 else DEFAULT_RETRIES,
            timeout_ns=timeout_ns,
        )

    def next_delay(self, elapsed: float, status: HealthStatus) -> float:
        """How long until the next probe, `elapsed` s after the container started.

        The first probe comes one interval after the start, as in Docker. Inside the
        start period a still-starting container is probed every start interval; a
        healthy one is probed again no later than the end of the start period.
        """
        if elapsed >= self.start_period:
            return self.interval
        if status is HealthStatus.STARTING:
            return self.start_interval
        return min(self.interval, self.start_period - elapsed)


def record_probe(health: HealthState, probe: HealthProbe, *, retries: int,
                 in_start_period: bool) -> bool:
    """Fold one probe's result into `health`; True if the status changed."""
    old = health.status
    health.log = [*health.log[-(MAX_LOG_ENTRIES - 1):], probe]
    if probe.exit_code == 0:
        health.failing_streak = 0
        health.status = HealthStatus.HEALTHY
    elif not (in_start_period and health.status is HealthStatus.STARTING):
        health.failing_streak += 1
        if health.failing_streak >= retries:
            health.status = HealthStatus.UNHEALTHY
    return health.status is not old


def probe_output(result: ExecResult, timeout_ns: int) -> str:
    """What the log shows for a probe: its output ("..." if cut), or why it failed to run."""
    if result.error:
        return f"OCI runtime exec failed: {result.error}"
    text = result.output.decode(errors="replace")
    if result.truncated:
        text += "..."
    if result.timed_out:
        prefix = f"Health check exceeded timeout ({format_duration(timeout_ns)})"
        return f"{prefix}: {text}" if text else prefix
    return text


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.define(eq=False)
class RuntimeExecutor:
    """Runs probes with the OCI runtime, as the container's process: its user, env, cwd.

    The process is read once from the bundle's config.json (which a start rewrites, and a
    start also starts a new health task).
    """

    c: Container
    oci: OCIRuntime
    config_json: Path
    scratch: Path  # where the runtime's exec files go
    going_down: Callable[[], Awaitable[bool]]  # being stopped, or no longer running?
    template: dict[str, Any] | None = None

    async def __call__(self, argv: list[str], kill_after: float) -> ExecResult | None:
        if self.template is None:
            # one health task per container: no exec of ours is using this container's files
            await trio.to_thread.run_sync(remove_stale_scratch, self.scratch, self.c.id)
            try:
                self.template = await read_process_template(self.config_json)
            except (OSError, ValueError) as exc:
                return ExecResult(exit_code=-1, error=f"reading the container's process: {exc}")
        # the container's env; a probe never has a terminal
        env = exec_environment(list(self.template.get("env") or []), user_env=self.c.spec.env,
                               terminal=False, home=None)
        result = await exec_capture(
            self.oci, self.c.id, argv, process=self.template, env=env, kill_after=kill_after,
            limit=MAX_OUTPUT_LEN, scratch=self.scratch)
        if result.exit_code != 0 and await self.going_down():
            return None  # a stop's SIGKILL took the probe with it: that says nothing
        return result


async def run_health_checks(receiver: HealthReceiver, c: Container, *,
                            execute: Executor) -> None:
    """Run `c`'s Docker health check (a command, with `execute`) for as long as it runs;
    the manager cancels this when it stops."""
    hc = c.spec.healthcheck
    command = probe_command(hc, c.spec.shell)
    if hc is None or c.state.health is None:
        return
    if command is None:
        log.warning("%s: health check %r has nothing to run", c.short_id, list(hc.test))
        return
    await run_checks(receiver, c, Timing.of(hc), partial(execute, command))


async def run_checks(receiver: HealthReceiver, c: Container, timing: Timing,
                     check: Check) -> None:
    """Check `c` every interval for as long as it runs, keeping the record: the loop every
    kind of check shares (a command in the container, an engine-run probe)."""
    health = c.state.health
    if health is None:
        return
    # the start period counts from the container's start, even if we came later (recovery)
    since_start = (_now() - c.state.started_at).total_seconds() if c.state.started_at else 0.0
    started = trio.current_time() - max(0.0, since_start)
    while True:
        await trio.sleep(timing.next_delay(trio.current_time() - started, health.status))
        if c.state.status is not Status.RUNNING:
            continue  # paused: not probed, nothing counts
        probe_time = trio.current_time()
        start = _now()
        result = await check(timing.timeout)
        end = _now()
        if result is None or c.state.status is not Status.RUNNING:
            continue
        count_probe(result)
        probe = HealthProbe(start=start, end=end, exit_code=result.exit_code,
                            output=probe_output(result, timing.timeout_ns))
        changed = record_probe(health, probe, retries=timing.retries,
                               in_start_period=probe_time - started < timing.start_period)
        if changed:
            await _announce(receiver, c, health)


def count_probe(result: ExecResult) -> None:
    """dockerd's counters (its "failed" are probes that could not run) and moorage's
    count of failures of any kind."""
    METRICS.health_checks.inc()
    if result.error:
        METRICS.health_checks_failed.inc()
    if result.exit_code != 0:
        METRICS.health_failures.inc()


async def _announce(receiver: HealthReceiver, c: Container, health: HealthState) -> None:
    """Persist, publish `health_status: …`, and act if it just turned unhealthy."""
    status = health.status
    try:
        await receiver.save(c)
    except Exception:
        log.exception("saving the health of %s failed", c.short_id)
    receiver.publish(c, f"health_status: {status.value}")
    if status is HealthStatus.UNHEALTHY:
        receiver.health_failed(c)
