"""What runs and what changed in a container: `docker top` and `docker diff`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from engine.api.http import JSONResponse, Request
from engine.api.router import Router
from engine.containers.changes import container_changes
from engine.containers.top import parse_ps, run_ps
from engine.errors import Conflict
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
    found = await trio.to_thread.run_sync(container_changes, m.paths(c).upper, lowers)
    return JSONResponse([{"Path": path, "Kind": kind} for path, kind in found] or None)


__all__ = ["router"]
