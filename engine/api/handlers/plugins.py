"""`/plugins/…`: managed plugins as dockerd answers for them (`engine.managed_plugins`).

create, list, inspect and remove work; enable is refused (501) because moord does not
run managed plugins yet, so every plugin stays disabled and `disable` says so in
dockerd's words; pulling, pushing, upgrading and configuring plugins answer 501.
`GET /plugins` lists managed plugins only, as dockerd's does: the drivers `docker info`
lists under `Plugins` are moord's own (and pluggy's) and the legacy Docker plugins
moord has activated (`engine.docker_plugins`: sockets in /run/docker/plugins, spec
files), the kinds dockerd lists there without listing them here; a managed plugin
would join them once it can be enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.api.http import EmptyResponse, JSONResponse, Request
from engine.api.router import Router
from engine.api.wire import plugins as wire
from engine.errors import InvalidParameter, SystemFailure, Unsupported
from engine.filtering import bool_filter, check_filters
from engine.managed_plugins.store import PluginStore

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()

_LIST_FILTERS = {"capability", "enabled"}


def _store(engine: Engine) -> PluginStore:
    if engine.plugins is None:
        raise SystemFailure("the plugin store is not available")
    return engine.plugins


def _event(engine: Engine, action: str, plugin_id: str, name: str) -> None:
    engine.events.publish("plugin", action, plugin_id, {"name": name})


@router.route("GET", "/plugins")
async def list_plugins(req: Request, engine: Engine) -> JSONResponse:
    filters = req.filters()
    check_filters(filters, _LIST_FILTERS)
    enabled = bool_filter(filters, "enabled")
    wanted = set(filters.get("capability", []))
    out = []
    for plugin in _store(engine).list():
        if enabled is not None and plugin.enabled != enabled:
            continue
        if wanted and not wanted & set(plugin.config.capabilities_offered):
            continue
        out.append(wire.plugin(plugin))
    return JSONResponse(out)


@router.route("POST", "/plugins/create")
async def create(req: Request, engine: Engine) -> EmptyResponse:
    plugin = await _store(engine).create(req.arg("name") or "", req.body_chunks())
    _event(engine, "create", plugin.id, plugin.name)
    return EmptyResponse(204)


@router.route("GET", "/plugins/{name:path}/json")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    return JSONResponse(wire.plugin(_store(engine).get(req.params["name"])))


@router.route("DELETE", "/plugins/{name:path}")
async def remove(req: Request, engine: Engine) -> EmptyResponse:
    name = req.params["name"]
    plugin = await _store(engine).remove(name, force=req.flag("force"))
    _event(engine, "remove", plugin.id, name)
    return EmptyResponse(200)


@router.route("POST", "/plugins/{name:path}/enable")
async def enable(req: Request, engine: Engine) -> EmptyResponse:
    timeout = req.arg("timeout") or ""
    try:
        int(timeout)
    except ValueError:  # dockerd's strconv.Atoi, before anything else
        raise InvalidParameter(f'strconv.Atoi: parsing "{timeout}": invalid syntax') from None
    await _store(engine).enable(req.params["name"])
    return EmptyResponse(200)


@router.route("POST", "/plugins/{name:path}/disable")
async def disable(req: Request, engine: Engine) -> EmptyResponse:
    plugin = await _store(engine).disable(req.params["name"], force=req.flag("force"))
    _event(engine, "disable", plugin.id, req.params["name"])
    return EmptyResponse(200)


def _from_registry() -> Unsupported:
    return Unsupported("installing plugins from a registry is not supported by moorage; "
                       "create one from a directory with `docker plugin create`")


@router.route("GET", "/plugins/privileges")
async def privileges(req: Request, engine: Engine) -> JSONResponse:
    raise _from_registry()


@router.route("POST", "/plugins/pull")
async def pull(req: Request, engine: Engine) -> JSONResponse:
    raise _from_registry()


@router.route("POST", "/plugins/{name:path}/upgrade")
async def upgrade(req: Request, engine: Engine) -> JSONResponse:
    raise _from_registry()


@router.route("POST", "/plugins/{name:path}/push")
async def push(req: Request, engine: Engine) -> JSONResponse:
    raise Unsupported("pushing plugins is not supported by moorage")


@router.route("POST", "/plugins/{name:path}/set")
async def configure(req: Request, engine: Engine) -> JSONResponse:
    _store(engine).get(req.params["name"])  # a missing plugin is a 404 first
    raise Unsupported("configuring managed plugins is not supported by moorage yet: they "
                      "are stored but not run")


__all__ = ["router"]
