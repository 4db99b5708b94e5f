"""`/containers/…`: create, start, stop, kill, restart, wait, remove, list, inspect,
rename, prune, pause and unpause (attach: `attach.py`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from engine.api.http import (
    EmptyResponse,
    JSONResponse,
    Request,
    StreamResponse,
    StreamWriter,
)
from engine.api.router import Router
from engine.api.wire import containers as wire
from engine.containers.filters import list_predicate, prune_keep
from engine.containers.model import Container, Status
from engine.containers.policy import check_restart_policy
from engine.containers.sizes import container_sizes
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()


def _container(req: Request, engine: Engine) -> Container:
    return engine.containers.get(req.params["id"])


@router.route("POST", "/containers/create")
async def create(req: Request, engine: Engine) -> JSONResponse:
    body = await req.json()
    if body is None:
        raise InvalidParameter("config cannot be empty in order to create a container")
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: expected an object")
    spec, host = wire.parse_create(body)
    from engine.api.wire.fields import string
    from engine.api.wire.networks import migrate_container_mac, parse_endpoints_config

    endpoints = parse_endpoints_config(body.get("NetworkingConfig"))
    mac_warning = migrate_container_mac(string(body, "MacAddress"), host.network_mode, endpoints,
                                        req.api_version)
    container, warnings = await engine.containers.create(req.arg("name") or None, spec, host,
                                                         endpoints)
    warnings += wire.discarded_warnings(body) + ([mac_warning] if mac_warning else [])
    return JSONResponse({"Id": container.id, "Warnings": warnings}, status=201)


@router.route("GET", "/containers/json")
async def list_containers(req: Request, engine: Engine) -> JSONResponse:
    show_all = req.flag("all")
    limit = req.int_arg("limit", -1) or -1
    filters = req.filters()

    def image_ids_for(ref: str) -> set[str]:
        try:
            return {engine.images.resolve(ref).id}
        except EngineError:
            return set()

    keep = list_predicate(filters, engine.containers.get, image_ids_for)
    link_names = engine.containers.link_names()
    if limit > 0 or req.flag("latest"):
        show_all = True
    shown = []
    for c in engine.containers.all():
        if not show_all and not filters.get("status") and not c.state.is_live \
                and c.state.status is not Status.RESTARTING:
            continue
        if not keep(c):
            continue
        shown.append(c)
    if req.flag("latest"):
        shown = shown[:1]
    elif limit > 0:
        shown = shown[:limit]
    result = [wire.summary_json(c, wire.shown_image(c, engine.images.resolve), engine.networks,
                                link_names.get(c.id, ()))
              for c in shown]
    if req.flag("size"):
        for summary, size in zip(result, await container_sizes(engine.containers, shown),
                                 strict=True):
            # dockerd leaves zeros out of the list (`omitempty`)
            summary.update({k: v for k, v in (("SizeRw", size.rw),
                                              ("SizeRootFs", size.root_fs)) if v})
    return JSONResponse(result)


@router.route("GET", "/containers/{id}/json")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    c = _container(req, engine)
    paths = engine.containers.paths(c)
    etc = engine.containers.etc_paths(c)
    image = engine.images.get(c.image_id)
    lower = ":".join(str(p) for p in engine.images.layer_dirs(image)) if image else ""
    data = {
        "LowerDir": lower,
        "UpperDir": str(paths.upper),
        "WorkDir": str(paths.work),
        "MergedDir": str(paths.rootfs),
        "ResolvConfPath": str(etc.resolv_conf),
        "HostnamePath": str(etc.hostname_file),
        "HostsPath": str(etc.hosts_file),
    }
    body = wire.inspect_json(c, log_path=str(paths.log), graph_data=data,
                             networks=engine.networks, links=engine.containers.links_shown(c))
    if req.flag("size"):
        (size,) = await container_sizes(engine.containers, [c])
        body["SizeRw"], body["SizeRootFs"] = size.rw, size.root_fs
    return JSONResponse(body)


@router.route("POST", "/containers/{id}/start")
async def start(req: Request, engine: Engine) -> EmptyResponse:
    if req.arg("checkpoint"):
        raise InvalidParameter("checkpoints are not supported")
    await engine.containers.start(_container(req, engine))
    return EmptyResponse(204)


def _timeout(req: Request) -> int | None:
    return req.int_arg("t")


@router.route("POST", "/containers/{id}/stop")
async def stop(req: Request, engine: Engine) -> EmptyResponse:
    c = _container(req, engine)
    await engine.containers.stop(c, grace=_timeout(req), signal=req.arg("signal") or None)
    return EmptyResponse(204)


@router.route("POST", "/containers/{id}/restart")
async def restart(req: Request, engine: Engine) -> EmptyResponse:
    c = _container(req, engine)
    await engine.containers.restart(c, grace=_timeout(req), signal=req.arg("signal") or None)
    return EmptyResponse(204)


@router.route("POST", "/containers/{id}/kill")
async def kill(req: Request, engine: Engine) -> EmptyResponse:
    c = _container(req, engine)
    await engine.containers.kill(c, req.arg("signal") or None)
    return EmptyResponse(204)


@router.route("POST", "/containers/{id}/pause")
async def pause(req: Request, engine: Engine) -> EmptyResponse:
    await engine.containers.pause(_container(req, engine))
    return EmptyResponse(204)


@router.route("POST", "/containers/{id}/unpause")
async def unpause(req: Request, engine: Engine) -> EmptyResponse:
    await engine.containers.unpause(_container(req, engine))
    return EmptyResponse(204)


@router.route("POST", "/containers/{id}/wait")
async def wait(req: Request, engine: Engine) -> StreamResponse:
    c = _container(req, engine)
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f'invalid condition: "{condition}"')

    async def produce(out: StreamWriter) -> None:
        result = await engine.containers.wait(c, condition)
        error = {"Message": result.error} if result.error else None
        await out.send(json.dumps({"StatusCode": result.status_code, "Error": error}).encode() + b"\n")

    return StreamResponse(produce, content_type="application/json")


@router.route("DELETE", "/containers/{id:path}")
async def remove(req: Request, engine: Engine) -> EmptyResponse:
    """`rm`; with `link=1` the path names a link (`/parent/alias`) and only it goes."""
    if req.flag("link"):
        await engine.containers.remove_link(req.params["id"].rstrip("/"))
        return EmptyResponse(204)
    c = _container(req, engine)
    await engine.containers.remove(c, force=req.flag("force"), volumes=req.flag("v"))
    return EmptyResponse(204)


@router.route("POST", "/containers/{id}/rename")
async def rename(req: Request, engine: Engine) -> EmptyResponse:
    c = _container(req, engine)
    await engine.containers.rename(c, req.arg("name") or "")
    return EmptyResponse(204)


@router.route("POST", "/containers/prune")
async def prune(req: Request, engine: Engine) -> JSONResponse:
    keep = prune_keep(req.filters())
    removed, reclaimed = await engine.containers.prune(keep)
    engine.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
    return JSONResponse({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})


@router.route("POST", "/containers/{id}/update")
async def update(req: Request, engine: Engine) -> JSONResponse:
    """`docker update`: the restart policy and resource limits, live when it runs."""
    c = _container(req, engine)
    policy, resources = wire.parse_update(await req.json_object())
    if policy is not None:
        check_restart_policy(policy)  # before any change, so a refused update changes nothing
    if not resources.is_empty():
        await engine.containers.update_resources(c, resources)
    if policy is not None:
        await engine.containers.update_restart_policy(c, policy)
    return JSONResponse({"Warnings": []})


@router.route("POST", "/containers/{id}/resize")
async def resize(req: Request, engine: Engine) -> EmptyResponse:
    c = _container(req, engine)
    height, width = req.terminal_size()
    if not c.state.is_live:
        raise Conflict(f"Container {c.id} is not running")
    await engine.containers.resize(c, height, width)
    return EmptyResponse(200)


def not_found(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")
