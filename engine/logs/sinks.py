"""Shipping a container's lines to a log driver that wants them (`ships = True`).

moord follows the container's log file from where its run began and hands each batch
to the driver. The driver can be slow or fail: the container never waits for it (it
writes to the file through conmon), and a failed batch is logged and skipped.

Where a shipper got to is kept in `<userdata>/shipped.<driver>` (the timestamp of the
last shipped line and how many lines with that timestamp went out — conmon stamps a
whole read chunk with one time), so a restarted moord carries on instead of shipping
everything again. It is replaced after every shipped batch, without fsync: only a crash
in the instant between a batch going out and its checkpoint (or a power cut) can send
that batch twice; nothing is ever skipped.

The shipper runs among the container's run tasks, which end (are cancelled) as soon as
the container exits. By then conmon has written everything to the file, but the
shipper may still be behind: a container that prints a burst and exits would lose its
last lines (all of them, for a short-lived one). So a cancelled shipper first reads the
file to its end and ships the rest, for at most `DRAIN_TIMEOUT` seconds, then stops.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio

from engine.logs.k8sfile import LogLine
from engine.logs.reader import LogQuery, read_logs
from engine.metrics.catalog import METRICS
from plugins.contracts import LogDriver, LoggedContainer, LogRecord

log = logging.getLogger(__name__)

#: How long a shipper may go on after its run ended, shipping what is left in the file.
#: Bounded so that a stuck driver cannot hold up a stop or moord's shutdown for long.
DRAIN_TIMEOUT = 5.0


def read_checkpoint(path: Path) -> tuple[int, int]:
    """(timestamp of the last shipped line, lines shipped with that timestamp); blocking."""
    try:
        stamp, count = path.read_text().split()
        return int(stamp), int(count)
    except (OSError, ValueError):
        return 0, 0


def write_checkpoint(path: Path, stamp: int, count: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{stamp} {count}\n")
    os.replace(tmp, path)


async def ship_lines(driver: LogDriver, container: LoggedContainer, log_path: Path,
                     since_ns: int, checkpoint: Path | None = None) -> None:
    """Follow `log_path` from `since_ns` (or the checkpoint, if later) and ship every line,
    until cancelled; then ship what is still unread (within `DRAIN_TIMEOUT`) and let the
    cancellation through."""
    stamp, count = since_ns, 0
    already = 0  # lines at the checkpoint's timestamp that a previous moord already shipped

    async def emit(lines: list[LogLine]) -> None:
        nonlocal stamp, count, already
        fresh: list[LogLine] = []
        for line in lines:
            if line.timestamp_ns < stamp:
                continue
            if line.timestamp_ns == stamp and already > 0:
                already -= 1
                continue
            fresh.append(line)
        if not fresh:
            return
        records = [LogRecord(line.stream, line.timestamp_ns, line.data) for line in fresh]
        labels = {"container": container.id[:12], "driver": driver.name}
        try:
            await driver.ship(container, records)
            METRICS.log_lines_shipped.inc(len(records), **labels)
        except Exception:
            METRICS.log_lines_dropped.inc(len(records), **labels)
            log.exception("log driver %s failed to ship %d line(s) of %s", driver.name,
                          len(records), container.id[:12])
        for line in fresh:
            if line.timestamp_ns == stamp:
                count += 1
            else:
                stamp, count = line.timestamp_ns, 1
        already = 0
        if checkpoint is not None:
            await trio.to_thread.run_sync(write_checkpoint, checkpoint, stamp, count)

    run_ended = trio.Event()
    finished = trio.Event()
    # Shields the reader from the run's cancellation; its deadline bounds the drain.
    drain_scope = trio.CancelScope(shield=True)

    async def follow() -> None:
        nonlocal stamp, count, already
        # No checkpoint may come before the shield: a container that exits at once has
        # its run tasks cancelled before they ever ran, and its lines must still go out.
        with drain_scope:
            if checkpoint is not None:
                saved_stamp, saved_count = await trio.to_thread.run_sync(read_checkpoint,
                                                                         checkpoint)
                if saved_stamp >= since_ns:
                    stamp, count, already = saved_stamp, saved_count, saved_count
            # `stopped` returning makes the reader read to the end of the file, ship the
            # rest and return: the same path `logs -f` takes when a container stops.
            await read_logs(log_path, LogQuery(since_ns=stamp), emit, follow=True,
                            is_running=lambda: True, stopped=run_ended.wait)
        if drain_scope.cancelled_caught:
            log.warning("shipping the last lines of %s to %s took over %.0f s; stopped",
                        container.id[:12], driver.name, DRAIN_TIMEOUT)
        finished.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            try:
                await finished.wait()
            except trio.Cancelled:
                run_ended.set()
                drain_scope.deadline = trio.current_time() + DRAIN_TIMEOUT
                raise
    finally:
        if checkpoint is not None and stamp:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(write_checkpoint, checkpoint, stamp, count)
