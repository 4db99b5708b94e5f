"""Shipping a container's lines to a log driver that wants them (`ships = True`).

moord follows the container's log file from where its run began and hands each batch
to the driver. The driver can be slow or fail: the container never waits for it (it
writes to the file through conmon), and a failed batch is logged and skipped.

The shipper runs among the container's run tasks, which end (are cancelled) as soon as
the container exits. By then conmon has written everything to the file, but the
shipper may still be behind: a container that prints a burst and exits would lose its
last lines (all of them, for a short-lived one). So a cancelled shipper first reads the
file to its end and ships the rest, for at most `DRAIN_TIMEOUT` seconds, then stops.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from engine.logs.k8sfile import LogLine
from engine.logs.reader import LogQuery, read_logs
from plugins.contracts import LogDriver, LoggedContainer, LogRecord

log = logging.getLogger(__name__)

#: How long a shipper may go on after its run ended, shipping what is left in the file.
#: Bounded so that a stuck driver cannot hold up a stop or moord's shutdown for long.
DRAIN_TIMEOUT = 5.0


async def ship_lines(driver: LogDriver, container: LoggedContainer, log_path: Path,
                     since_ns: int) -> None:
    """Follow `log_path` from `since_ns` and ship every line, until cancelled; then ship
    what is still unread (within `DRAIN_TIMEOUT`) and let the cancellation through."""

    async def emit(lines: list[LogLine]) -> None:
        records = [LogRecord(line.stream, line.timestamp_ns, line.data) for line in lines]
        try:
            await driver.ship(container, records)
        except Exception:
            log.exception("log driver %s failed to ship %d line(s) of %s", driver.name,
                          len(records), container.id[:12])

    run_ended = trio.Event()
    finished = trio.Event()
    # Shields the reader from the run's cancellation; its deadline bounds the drain.
    drain_scope = trio.CancelScope(shield=True)

    async def follow() -> None:
        with drain_scope:
            # `stopped` returning makes the reader read to the end of the file, ship the
            # rest and return: the same path `logs -f` takes when a container stops.
            await read_logs(log_path, LogQuery(since_ns=since_ns), emit, follow=True,
                            is_running=lambda: True, stopped=run_ended.wait)
        if drain_scope.cancelled_caught:
            log.warning("shipping the last lines of %s to %s took over %.0f s; stopped",
                        container.id[:12], driver.name, DRAIN_TIMEOUT)
        finished.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        try:
            await finished.wait()
        except trio.Cancelled:
            run_ended.set()
            drain_scope.deadline = trio.current_time() + DRAIN_TIMEOUT
            raise
