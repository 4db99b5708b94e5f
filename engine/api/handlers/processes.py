"""What runs in a container, what it uses and what it changed: top, stats, diff."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import trio

from engine.api.http import JSONResponse, Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.api.wire.stats import stats_json
from engine.containers.diff import container_changes
from engine.containers.stats import Sample, sample
from engine.containers.top import parse_ps, run_ps
from engine.errors import Conflict
from engine.metrics.catalog import METRICS
from engine.runtime.cgroups import cgroup_pids

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()


@router.route("GET", "/containers/{id}/top")
async def top(req: Request, engine: Engine) -> JSONResponse:
    m = engine.containers
    c = m.get(req.params["id"])
    if not c.state.is_live:
        raise Conflict(f"Container {c.id} is not running")
    ps_args = req.arg("ps_args") or ""

    def gather() -> tuple[str, set[int]]:
        return run_ps(ps_args), cgroup_pids(m.host.cgroups, m.cgroup_path(c))

    output, pids = await trio.to_thread.run_sync(gather)
    result = parse_ps(output, pids)
    return JSONResponse({"Titles": result.titles, "Processes": result.processes})


@router.route("GET", "/containers/{id}/changes")
async def changes(req: Request, engine: Engine) -> JSONResponse:
    m = engine.containers
    c = m.get(req.params["id"])
    image = engine.images.get(c.image_id)
    lowers = engine.images.layer_dirs(image) if image is not None else []
    with METRICS.container_actions.time(action="changes"):
        found = await trio.to_thread.run_sync(container_changes, m.paths(c).upper, lowers)
    return JSONResponse([{"Path": path, "Kind": kind} for path, kind in found] or None)


__all__ = ["router"]


@router.route("GET", "/containers/{id}/stats")
async def stats(req: Request, engine: Engine) -> StreamResponse:
    """One JSON object a second while streaming; with `stream=false` one, whose CPU figures
    cover the last second (`one-shot=true`: at once, without them)."""
    m = engine.containers
    c = m.get(req.params["id"])
    stream = req.flag("stream", True)
    one_shot = req.flag("one-shot")
    relpath = m.cgroup_path(c)

    async def read() -> Sample:
        return await trio.to_thread.run_sync(sample, m.host.cgroups, relpath, c.state.pid)

    async def produce(out: StreamWriter) -> None:
        before: Sample | None = None
        if not stream and not one_shot:
            before = await read()
            await trio.sleep(1)
        while True:
            now = await read()
            body = stats_json(c.name, c.id, now, before)
            await out.send(json.dumps(body).encode() + b"\n")
            if not stream or not c.state.is_live:
                return
            before = now
            await trio.sleep(1)

    return StreamResponse(produce, content_type="application/json")
