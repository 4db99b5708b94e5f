"""`GET /containers/{id}/logs`: what conmon wrote, framed as Docker clients expect."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from engine.api.http import HijackedStream, Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.api.streams import (
    TimestampFormatter,
    encode_log_lines,
    parse_tail,
    stream_media_type,
)
from engine.containers.model import Container, Status
from engine.errors import InvalidParameter, Unsupported
from engine.logs.k8sfile import LogLine
from engine.logs.reader import LogQuery, read_logs
from engine.logs.rotation import rotated_files
from engine.timestamps import query_time_ns

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()


@router.route("GET", "/containers/{id}/logs")
async def logs(req: Request, engine: Engine) -> StreamResponse:
    c = engine.containers.get(req.params["id"])
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    if not engine.containers.log_driver(c).readable:
        raise Unsupported("configured logging driver does not support reading")
    query = LogQuery(
        stdout=stdout,
        stderr=stderr,
        # 0 is "from the start" and "no end" alike, as dockerd reads them for logs
        since_ns=query_time_ns(req.arg("since"), name="since"),
        until_ns=query_time_ns(req.arg("until"), name="until"),
        tail=parse_tail(req.arg("tail")),
        timestamps=req.flag("timestamps"),
        details=req.flag("details"),
    )
    follow = req.flag("follow")
    multiplexed = not c.spec.tty
    path = engine.containers.paths(c).log

    async def produce(out: StreamWriter) -> None:
        stamp = TimestampFormatter() if query.timestamps else None

        async def emit(lines: list[LogLine]) -> None:
            await out.send(encode_log_lines(lines, multiplexed=multiplexed,
                                            timestamps=query.timestamps, details=query.details,
                                            stamp=stamp))

        async def stopped() -> None:
            await engine.containers.wait_at_rest(c)

        rotated = await trio.to_thread.run_sync(rotated_files, path)
        await read_logs(path, query, emit, follow=follow, rotated=rotated,
                        is_running=lambda: c.state.is_live or c.state.status is Status.RESTARTING,
                        stopped=stopped)

    return StreamResponse(produce, content_type=stream_media_type(tty=c.spec.tty,
                                                                   api_version=req.api_version))


async def write_history(engine: Engine, c: Container, conn: HijackedStream, *, tty: bool,
                        stdout: bool, stderr: bool) -> None:
    """The log so far, for `attach?logs=1`."""
    path = engine.containers.paths(c).log

    async def emit(lines: list[LogLine]) -> None:
        await conn.send_all(encode_log_lines(lines, multiplexed=not tty))

    rotated = await trio.to_thread.run_sync(rotated_files, path)
    await read_logs(path, LogQuery(stdout=stdout, stderr=stderr), emit, rotated=rotated)
