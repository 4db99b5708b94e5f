"""Registry endpoints: pull (`POST /images/create?fromImage=`), push, `POST /auth`, and
`GET /distribution/{name}/json` (what a registry holds under a name).

As dockerd does, a pull answers with an error status while nothing has been sent
(no such image, bad credentials, unreachable registry: the client sees 404, 401 or
500), and with a `200` progress stream once the image's config is known; a failure
after that is an `errorDetail` line in the stream.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from engine.api.http import JSONResponse, Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.api.wire import images as images_wire
from engine.api.wire import progress as wire
from engine.errors import EngineError, SystemFailure
from engine.images.importer import parse_platform
from engine.images.reference import Reference, is_full_id, parse
from engine.registry.auth import Credentials, credentials_from_config, decode_registry_auth
from engine.registry.progress import Progress, ProgressSink

if TYPE_CHECKING:
    from engine.engine import Engine
    from engine.registry.service import RegistryService

log = logging.getLogger(__name__)
router = Router()

_BACKLOG = 256  # queued messages past which byte counts are dropped


def _registry(engine: Engine) -> RegistryService:
    if engine.registry is None:
        raise SystemFailure("the registry client is not available")
    return engine.registry


async def credentials_for(req: Request, domain: str) -> Credentials | None:
    """The request's `X-Registry-Auth`, else what the daemon's own config.json holds."""
    given = decode_registry_auth(req.headers.get("x-registry-auth"))
    if given is not None:
        return given
    return await trio.to_thread.run_sync(credentials_from_config, domain)


def first_failure(exc: BaseException) -> BaseException:
    """The error to report from what may be a nursery's group of them: an engine error first."""
    leaves: list[BaseException] = []
    pending = [exc]
    while pending:
        item = pending.pop(0)
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            leaves.append(item)
    for leaf in leaves:
        if isinstance(leaf, EngineError):
            return leaf
    return leaves[0] if leaves else exc


def progress_stream(work: Callable[[ProgressSink], Awaitable[None]]) -> StreamResponse:
    """Run `work` while its progress goes out as Docker's JSON lines; errors go in-band."""

    async def produce(out: StreamWriter) -> None:
        send, receive = trio.open_memory_channel[Progress](math.inf)

        def sink(p: Progress) -> None:
            # a slow client may miss byte counts (the next one supersedes them), never a status
            if p.current is not None and send.statistics().current_buffer_used > _BACKLOG:
                return
            send.send_nowait(p)

        async def run() -> None:
            async with send:
                try:
                    await work(sink)
                except Exception as exc:
                    failure = first_failure(exc)
                    if not isinstance(failure, EngineError):
                        log.error("registry operation failed", exc_info=failure)
                    text = failure.message if isinstance(failure, EngineError) else str(failure)
                    await send.send(Progress(status="", id="", aux={"__error__": text}))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            async with receive:
                async for p in receive:
                    if p.aux is not None and "__error__" in p.aux:
                        await out.send(wire.encode_error(str(p.aux["__error__"])))
                    else:
                        await out.send(wire.encode(p))

    return StreamResponse(produce, content_type="application/json")


async def pull(req: Request, engine: Engine, ref: Reference) -> StreamResponse:
    """The pull half of `POST /images/create`."""
    registry = _registry(engine)
    platform = parse_platform(req.arg("platform") or "")
    credentials = await credentials_for(req, ref.domain)
    plan = await registry.puller.resolve(ref, platform, credentials)

    async def work(sink: ProgressSink) -> None:
        image, _ = await registry.puller.fetch(plan, sink)
        engine.events.publish("image", "pull", ref.familiar(), {"name": ref.familiar()})
        del image

    return progress_stream(work)


@router.route("POST", "/images/{name:path}/push")
async def push(req: Request, engine: Engine) -> StreamResponse:
    registry = _registry(engine)
    refs = registry.pusher.targets(req.params["name"], req.arg("tag") or "")
    credentials = await credentials_for(req, refs[0].domain)

    async def work(sink: ProgressSink) -> None:
        await registry.pusher.push(refs, credentials, sink)
        for ref in refs:
            engine.events.publish("image", "push", ref.familiar(), {"name": ref.familiar()})

    return progress_stream(work)


@router.route("GET", "/distribution/{name:path}/json")
async def distribution(req: Request, engine: Engine) -> JSONResponse:
    """dockerd's answers: a full image ID has no manifest to find (500, its words), a
    name that does not parse is a 400."""
    name = req.params["name"]
    if is_full_id(name):
        raise SystemFailure("no manifest found for full image ID")
    ref = parse(name)
    credentials = await credentials_for(req, ref.domain)
    info = await _registry(engine).distribution.inspect(ref, credentials)
    return JSONResponse(images_wire.distribution(info))


@router.route("POST", "/auth")
async def auth(req: Request, engine: Engine) -> JSONResponse:
    body = await req.json_object()
    credentials = Credentials(
        username=str(body.get("username") or ""),
        password=str(body.get("password") or ""),
        identity_token=str(body.get("identitytoken") or ""),
        registry_token=str(body.get("registrytoken") or ""),
    )
    server = str(body.get("serveraddress") or "")
    token = await _registry(engine).login(server, credentials)
    return JSONResponse({"Status": "Login Succeeded", "IdentityToken": token})


__all__ = ["credentials_for", "distribution", "progress_stream", "pull", "router"]
