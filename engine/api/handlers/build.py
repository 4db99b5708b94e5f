"""`POST /build` (the classic builder, `DOCKER_BUILDKIT=0 docker build`) and `/build/prune`.

The context (a tar, perhaps compressed) is received and unpacked, `.dockerignore`
applied and the Dockerfile parsed before anything is sent, so those failures keep
their status codes; the build then streams as the classic builder does, and a failed
step is an `errorDetail` line.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import TYPE_CHECKING, Any

import trio

from engine.api.http import JSONResponse, Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.build.builder import BuildOptions, StepFailed
from engine.errors import EngineError, InvalidParameter, SystemFailure, Unsupported
from engine.images.reference import parse_repository_and_tag
from engine.limits import Resources
from engine.registry.auth import Credentials

if TYPE_CHECKING:
    from engine.build.service import BuildService
    from engine.engine import Engine

log = logging.getLogger(__name__)
router = Router()


def _service(engine: Engine) -> BuildService:
    if engine.build is None:
        raise SystemFailure("the builder is not available")
    return engine.build


def _json_map(req: Request, name: str) -> dict[str, Any]:
    raw = req.arg(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name}: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {name}: not a JSON object")
    return value


def _cache_from(req: Request) -> tuple[str, ...]:
    """`cachefrom`: a JSON list of image references whose build steps may be reused."""
    raw = req.arg("cachefrom")
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter("invalid cachefrom: not JSON") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter("invalid cachefrom: not a JSON list of image names")
    return tuple(v for v in value if v)


def _dockerfile_name(req: Request) -> str:
    """The first `dockerfile` value, as dockerd reads it: docker-py sends the generated
    name of a Dockerfile it added to the context, then that Dockerfile's text."""
    values = req.args("dockerfile")
    return values[0] if values else ""


def _registry_config(req: Request) -> dict[str, Credentials]:
    """`X-Registry-Config`: base64url JSON of {registry: auth config} for base-image pulls."""
    header = req.headers.get("x-registry-config")
    if not header:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return {}
    from engine.registry.auth import server_domain

    out: dict[str, Credentials] = {}
    if isinstance(doc, dict):
        for server, entry in doc.items():
            if isinstance(entry, dict) and entry.get("username"):
                out[server_domain(str(server))] = Credentials(
                    str(entry.get("username", "")), str(entry.get("password", "")),
                    str(entry.get("identitytoken", "")))
    return out


def _run_limits(req: Request) -> Resources:
    """The limits RUN containers get (`docker build --memory …`), as dockerd passes them."""
    return Resources(
        memory=req.int_arg("memory") or 0, memory_swap=req.int_arg("memswap") or 0,
        cpu_shares=req.int_arg("cpushares") or 0, cpu_period=req.int_arg("cpuperiod") or 0,
        cpu_quota=req.int_arg("cpuquota") or 0, cpuset_cpus=req.arg("cpusetcpus") or "",
        cpuset_mems=req.arg("cpusetmems") or "")


def _options(req: Request) -> BuildOptions:
    if req.arg("remote"):
        raise Unsupported("building from a remote context (URL or git) is not supported; "
                          "send the context as a tar")
    if req.flag("squash"):  # what a dockerd without experimental features answers
        raise InvalidParameter("squash is only supported with experimental mode")
    isolation = req.arg("isolation") or ""
    if isolation not in ("", "default"):
        raise InvalidParameter(f"Unsupported isolation: {json.dumps(isolation)}")
    tags = tuple(parse_repository_and_tag(t) for t in req.args("t") if t)
    build_args = {str(k): str(v) for k, v in _json_map(req, "buildargs").items() if v is not None}
    return BuildOptions(
        tags=tags,
        build_args=build_args,
        labels={str(k): str(v) for k, v in _json_map(req, "labels").items()},
        no_cache=req.flag("nocache"),
        pull=req.flag("pull"),
        target=req.arg("target") or "",
        network_mode=req.arg("networkmode") or "default",
        extra_hosts=tuple(h for h in req.args("extrahosts") if h),
        limits=_run_limits(req),
        shm_size=req.int_arg("shmsize") or 0,
        cache_from=_cache_from(req),
        quiet=req.flag("q"),
        credentials=_registry_config(req),
    )


class _Coalescer:
    """Output lines sent as they come, but those that pile up while the client is being
    written to go out together: a cached build's 30 lines in a few writes, not 30."""

    def __init__(self, out: StreamWriter) -> None:
        self.out = out
        self.pending: list[bytes] = []
        self.ready = trio.Event()
        self.closed = False
        self.room = trio.Semaphore(256)  # a slow client slows the build, not memory

    async def put(self, data: bytes) -> None:
        await self.room.acquire()
        self.pending.append(data)
        self.ready.set()

    async def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def pump(self) -> None:
        while True:
            await self.ready.wait()
            self.ready = trio.Event()
            batch, self.pending = self.pending, []
            if batch:
                await self.out.send(b"".join(batch))
                for _ in batch:
                    self.room.release()
            if self.closed and not self.pending:
                return


@router.route("POST", "/build")
async def build(req: Request, engine: Engine) -> StreamResponse:
    from engine.build import context as build_context
    from engine.dockerfile import parse

    service = _service(engine)
    options = _options(req)
    dockerfile_name = _dockerfile_name(req) or "Dockerfile"
    workspace = await service.workspace()
    try:
        tarball = workspace / "context.tar"
        await service.receive(req.body_chunks(), tarball)
        context = workspace / "context"

        def prepare() -> Any:
            """One worker-thread hop for all of it: a cached build is over in tens of ms."""
            build_context.extract_context(tarball, context)
            tarball.unlink(missing_ok=True)
            source = build_context.read_dockerfile(context, dockerfile_name)
            build_context.drop_ignored(context, dockerfile_name)
            return parse(source)

        dockerfile = await trio.to_thread.run_sync(prepare)
    except BaseException:
        await service.release(workspace)
        raise

    async def produce(out: StreamWriter) -> None:
        lines = _Coalescer(out)

        async def emit(message: dict[str, Any]) -> None:
            await lines.put(json.dumps(message).encode() + b"\r\n")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(lines.pump)
            try:
                image = await service.build(dockerfile, context, workspace, options, emit)
                engine.events.publish("image", "build", image.id, {"name": image.id})
            except StepFailed as exc:
                detail: dict[str, Any] = {"message": exc.message}
                if exc.exit_code is not None:  # dockerd's JSONError: a RUN's exit code
                    detail = {"code": exc.exit_code, **detail}
                await emit({"errorDetail": detail, "error": exc.message})
            except EngineError as exc:
                await emit({"errorDetail": {"message": exc.message}, "error": exc.message})
            except Exception as exc:
                log.exception("build failed")
                await emit({"errorDetail": {"message": str(exc)}, "error": str(exc)})
            finally:
                await lines.close()
        # the client has its last line; the workspace goes after the answer has ended
        trio.lowlevel.spawn_system_task(service.release_later, workspace)

    return StreamResponse(produce, content_type="application/json")


@router.route("POST", "/build/prune")
async def prune(req: Request, engine: Engine) -> JSONResponse:
    removed, reclaimed = await _service(engine).prune()
    return JSONResponse({"CachesDeleted": removed or None, "SpaceReclaimed": reclaimed})


@router.route("POST", "/session")
async def session(req: Request, engine: Engine) -> JSONResponse:
    raise Unsupported("BuildKit sessions are not supported: build with DOCKER_BUILDKIT=0")


__all__ = ["router"]
