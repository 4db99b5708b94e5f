"""`/networks/…`: list, inspect, create, remove, connect, disconnect and prune."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.api.http import EmptyResponse, JSONResponse, Request
from engine.api.router import Router
from engine.api.wire import networks as wire
from engine.errors import InvalidParameter, NotFound, SystemFailure
from engine.filtering import check_filters
from engine.timestamps import filter_time

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.networks.service import NetworkService

router = Router()

_PRUNE_FILTERS = frozenset({"until", "label", "label!"})


def _service(engine: Engine) -> NetworkService:
    service: NetworkService | None = getattr(engine, "networks", None)
    if service is None:
        raise SystemFailure("networking is not set up in this daemon")
    return service


@router.route("GET", "/networks")
async def list_networks(req: Request, engine: Engine) -> JSONResponse:
    service = _service(engine)
    records = service.list_networks(req.filters())
    return JSONResponse([wire.network_json(service, r, with_containers=False) for r in records])


@router.route("GET", "/networks/{id}")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    service = _service(engine)
    scope = req.arg("scope") or ""
    record = service.get(req.params["id"])
    if scope and scope != record.scope:
        raise NotFound(f"network {req.params['id']} not found")
    return JSONResponse(wire.network_json(service, record))


@router.route("POST", "/networks/create")
async def create(req: Request, engine: Engine) -> JSONResponse:
    body = await req.json_object()
    record = await _service(engine).create_network(**wire.parse_create(body))
    engine.events.publish("network", "create", record.id,
                          {"name": record.name, "type": record.driver})
    return JSONResponse({"Id": record.id, "Warning": ""}, status=201)


@router.route("DELETE", "/networks/{id}")
async def remove(req: Request, engine: Engine) -> EmptyResponse:
    service = _service(engine)
    record = service.get(req.params["id"])
    await service.delete_network(record.id)
    engine.events.publish("network", "destroy", record.id,
                          {"name": record.name, "type": record.driver})
    return EmptyResponse(204)


def _container_ref(body: dict[str, Any]) -> str:
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise InvalidParameter("no container specified")
    return ref


@router.route("POST", "/networks/{id}/connect")
async def connect(req: Request, engine: Engine) -> EmptyResponse:
    service = _service(engine)
    body = await req.json_object()
    ref = _container_ref(body)
    settings = body.get("EndpointConfig")
    if settings is not None and not isinstance(settings, dict):
        raise InvalidParameter("invalid type for EndpointConfig: expected an object")
    record = service.get(req.params["id"])
    await service.connect(record.id, ref, wire.parse_endpoint_request(settings))
    container = service.containers.find(ref) if service.containers else None
    engine.events.publish("network", "connect", record.id,
                          {"name": record.name, "type": record.driver,
                           "container": container.id if container else ref})
    return EmptyResponse(200)


@router.route("POST", "/networks/{id}/disconnect")
async def disconnect(req: Request, engine: Engine) -> EmptyResponse:
    service = _service(engine)
    body = await req.json_object()
    ref = _container_ref(body)
    force = body.get("Force")
    if force is not None and not isinstance(force, bool):
        raise InvalidParameter("invalid type for Force: expected a boolean")
    record = service.get(req.params["id"])
    container = service.containers.find(ref) if service.containers else None
    await service.disconnect(record.id, ref, force=bool(force))
    engine.events.publish("network", "disconnect", record.id,
                          {"name": record.name, "type": record.driver,
                           "container": container.id if container else ref})
    return EmptyResponse(200)


@router.route("POST", "/networks/prune")
async def prune(req: Request, engine: Engine) -> JSONResponse:
    filters = req.filters()
    check_filters(filters, _PRUNE_FILTERS)
    untils = [filter_time(v) for v in filters.get("until", [])]
    deleted = await _service(engine).prune(
        until=min(untils) if untils else None, labels=filters.get("label", []),
        not_labels=filters.get("label!", []))
    engine.events.publish("network", "prune", "", {})
    return JSONResponse({"NetworksDeleted": deleted or None})
