"""`/volumes/…`: create, list, inspect, remove, prune (Engine API 1.50).

The work is `engine.volumes.service.VolumeService`'s; handlers read requests and shape
answers. Filters are the service's: `dangling`, `name`, `label`, `driver` for lists;
`label`, `label!`, `all` for prune (before API 1.42, prune took named volumes too, so
older clients get `all=true` unless they say otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.api.http import EmptyResponse, JSONResponse, Request
from engine.api.router import Router
from engine.api.wire import fields
from engine.api.wire import volumes as wire
from engine.api.wire.images import older_than
from engine.errors import Unsupported

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.volumes.service import VolumeService

router = Router()


def service(engine: Engine) -> VolumeService:
    """The daemon's volume service."""
    return engine.volumes


@router.route("POST", "/volumes/create")
async def create(req: Request, engine: Engine) -> JSONResponse:
    body = await req.json_object()
    if body.get("ClusterVolumeSpec"):
        raise Unsupported("cluster volumes need a swarm, which moorage does not have")
    volume = await service(engine).create(
        fields.string(body, "Name"), driver=fields.string(body, "Driver"),
        options=fields.string_map(body, "DriverOpts"), labels=fields.string_map(body, "Labels"))
    return JSONResponse(wire.volume_json(volume), status=201)


@router.route("GET", "/volumes")
async def list_volumes(req: Request, engine: Engine) -> JSONResponse:
    volumes = service(engine).list(req.filters())
    return JSONResponse({"Volumes": [wire.volume_json(v) for v in volumes], "Warnings": []})


@router.route("POST", "/volumes/prune")
async def prune(req: Request, engine: Engine) -> JSONResponse:
    filters = req.filters()
    if older_than(req.api_version, "1.42") and "all" not in filters:
        filters["all"] = ["true"]
    removed, reclaimed = await service(engine).prune(filters)
    engine.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
    return JSONResponse(wire.prune_json(removed, reclaimed))


@router.route("GET", "/volumes/{name}")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    volume, status = await service(engine).inspect(req.params["name"])
    return JSONResponse(wire.volume_json(volume, status))


@router.route("PUT", "/volumes/{name}")
async def update(req: Request, engine: Engine) -> JSONResponse:
    service(engine).get(req.params["name"])
    raise Unsupported("volume update is only supported for cluster volumes, which need a swarm")


@router.route("DELETE", "/volumes/{name}")
async def remove(req: Request, engine: Engine) -> EmptyResponse:
    await service(engine).remove(req.params["name"], force=req.flag("force"))
    return EmptyResponse(204)


__all__ = ["router", "service"]
