"""`GET /events`: past events since a time, then live ones, as JSON lines."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import trio

from engine.api.http import Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.api.wire.events import event_filter, event_json
from engine.errors import InvalidParameter
from engine.events import Event
from engine.timestamps import optional_query_time_ns

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()


@router.route("GET", "/events")
async def events(req: Request, engine: Engine) -> StreamResponse:
    # `0` is the epoch (every stored event), not "no since": Docker's rule
    since_ns = optional_query_time_ns(req.arg("since"), name="since")
    until_ns = optional_query_time_ns(req.arg("until"), name="until")
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise InvalidParameter(f"`since` time ({req.arg('since')}) cannot be after "
                               f"`until` time ({req.arg('until')})")
    if since_ns is None and until_ns is not None:
        since_ns = 0  # dockerd replays the stored events up to `until` then
    wanted = event_filter(req.filters())

    async def produce(out: StreamWriter) -> None:
        def line(e: Event) -> bytes:
            return json.dumps(event_json(e)).encode() + b"\n"

        with engine.events.subscribe(wanted, since_ns=since_ns) as (past, live):
            for e in past:
                if until_ns is not None and e.time_ns > until_ns:
                    return
                await out.send(line(e))
            if until_ns is not None and until_ns <= time.time_ns():
                return
            wait = float("inf") if until_ns is None else (until_ns - time.time_ns()) / 1e9
            with trio.move_on_after(wait):
                async for e in live:
                    await out.send(line(e))

    return StreamResponse(produce, content_type="application/json")
