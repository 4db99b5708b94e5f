"""`GET /events`: past events since a time, then live ones, as JSON lines."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import trio

from engine.api.http import Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.api.streams import parse_docker_time
from engine.api.wire.events import event_filter, event_json
from engine.events import Event

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()


@router.route("GET", "/events")
async def events(req: Request, engine: Engine) -> StreamResponse:
    since_ns = parse_docker_time(req.arg("since"), name="since")
    until_ns = parse_docker_time(req.arg("until"), name="until")
    wanted = event_filter(req.filters())

    async def produce(out: StreamWriter) -> None:
        def line(e: Event) -> bytes:
            return json.dumps(event_json(e)).encode() + b"\n"

        with engine.events.subscribe(wanted, since_ns=since_ns) as (past, live):
            for e in past:
                if until_ns and e.time_ns > until_ns:
                    return
                await out.send(line(e))
            if until_ns and until_ns <= time.time_ns():
                return
            with trio.move_on_after((until_ns - time.time_ns()) / 1e9 if until_ns else float("inf")):
                async for e in live:
                    await out.send(line(e))

    return StreamResponse(produce, content_type="application/json")
