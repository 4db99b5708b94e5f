"""The container's files as tars: `docker cp` (`/containers/{id}/archive`: HEAD (stat),
GET (a tar out), PUT (a tar in)) and `docker export` (`GET /containers/{id}/export`).

The stat of the path goes in `X-Docker-Container-Path-Stat` (base64 JSON), which the
docker CLI reads to decide how to name what it copies.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import TYPE_CHECKING

import trio

from engine.api.http import EmptyResponse, RawResponse, Request, StreamResponse, StreamWriter
from engine.api.router import Router
from engine.api.wire.containers import rfc3339
from engine.batching import write_in_batches
from engine.containers.archive import (
    PathStat,
    Writable,
    container_root,
    extract_archive,
    path_stat,
    write_archive,
)
from engine.containers.export import check_exportable, export_container
from engine.errors import InvalidParameter

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()
_CHUNK = 1024 * 1024


def _stat_header(info: PathStat) -> tuple[str, str]:
    import datetime as dt

    doc = {"name": info.name, "size": info.size, "mode": info.mode,
           "mtime": rfc3339(dt.datetime.fromtimestamp(info.mtime, dt.UTC)),
           "linkTarget": info.link_target}
    return ("X-Docker-Container-Path-Stat", base64.b64encode(json.dumps(doc).encode()).decode())


def _path(req: Request) -> str:
    path = req.arg("path")
    if not path:
        raise InvalidParameter("Path cannot be empty")
    return path


async def _head(req: Request, engine: Engine) -> RawResponse:
    c = engine.containers.get(req.params["id"])
    path = _path(req)
    async with container_root(engine.containers, c) as root:
        info = await trio.to_thread.run_sync(path_stat, root, path)
    return RawResponse(b"", headers=(_stat_header(info),))


@router.route("GET", "/containers/{id}/archive")
async def get(req: Request, engine: Engine) -> StreamResponse | RawResponse:
    if req.method == "HEAD":  # the router serves HEAD with this GET handler
        return await _head(req, engine)
    c = engine.containers.get(req.params["id"])
    path = _path(req)
    spool = await trio.to_thread.run_sync(lambda: tempfile.TemporaryFile())  # noqa: SIM115
    try:
        async with container_root(engine.containers, c) as root:
            info = await trio.to_thread.run_sync(write_archive, root, path, spool)
        await trio.to_thread.run_sync(lambda: spool.seek(0))
    except BaseException:
        spool.close()
        raise

    async def produce(out: StreamWriter) -> None:
        try:
            while data := await trio.to_thread.run_sync(spool.read, _CHUNK):
                await out.send(data)
        finally:
            spool.close()

    return StreamResponse(produce, content_type="application/x-tar",
                          headers=(_stat_header(info),))


@router.route("GET", "/containers/{id}/export")
async def export(req: Request, engine: Engine) -> StreamResponse:
    """The whole filesystem, streamed (`engine/containers/export.py`)."""
    c = engine.containers.get(req.params["id"])
    check_exportable(engine.containers, c)

    async def produce(out: StreamWriter) -> None:
        await export_container(engine.containers, c, out.send)

    return StreamResponse(produce, content_type="application/x-tar")


@router.route("PUT", "/containers/{id}/archive")
async def put(req: Request, engine: Engine) -> EmptyResponse:
    c = engine.containers.get(req.params["id"])
    path = _path(req)
    keep_owner = req.flag("copyUIDGID")
    fd, name = await trio.to_thread.run_sync(lambda: tempfile.mkstemp(prefix="moorage-cp-"))
    try:
        with os.fdopen(fd, "wb") as f:
            await write_in_batches(req.body_chunks(), f.write)
        async with container_root(engine.containers, c) as root:

            def extract() -> None:
                with open(name, "rb") as source:
                    extract_archive(root, path, source, keep_owner=keep_owner,
                                    writable=Writable.of(c))

            await trio.to_thread.run_sync(extract)
    finally:
        await trio.to_thread.run_sync(lambda: os.unlink(name))
    return EmptyResponse(200)


__all__ = ["router"]
