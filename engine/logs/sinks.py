"""Shipping a container's lines to a log driver that wants them (`ships = True`).

moord follows the container's log file from where its run began and hands each batch
to the driver. The driver can be slow or fail: the container never waits for it (it
writes to the file through conmon), and a failed batch is logged and skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from engine.logs.k8sfile import LogLine
from engine.logs.reader import LogQuery, read_logs
from plugins.contracts import LogDriver, LoggedContainer, LogRecord

log = logging.getLogger(__name__)


async def ship_lines(driver: LogDriver, container: LoggedContainer, log_path: Path,
                     since_ns: int) -> None:
    """Follow `log_path` from `since_ns` and ship every line, until cancelled."""

    async def emit(lines: list[LogLine]) -> None:
        records = [LogRecord(line.stream, line.timestamp_ns, line.data) for line in lines]
        try:
            await driver.ship(container, records)
        except Exception:
            log.exception("log driver %s failed to ship %d line(s) of %s", driver.name,
                          len(records), container.id[:12])

    never = trio.Event()

    async def forever() -> None:
        await never.wait()

    await read_logs(log_path, LogQuery(since_ns=since_ns), emit, follow=True,
                    is_running=lambda: True, stopped=forever)
