"""`docker exec`: create, start (attached over a hijacked connection, or detached),
inspect, resize."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from engine.api.http import EmptyResponse, HijackedStream, HijackResponse, JSONResponse, Request
from engine.api.router import Router
from engine.api.streams import frame, stream_media_type
from engine.api.wire.execs import exec_inspect
from engine.containers.execs import ExecManager, ExecSession, set_window
from engine.errors import InvalidParameter, SystemFailure

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()


def _execs(engine: Engine) -> ExecManager:
    if engine.execs is None:
        raise SystemFailure("exec is not available")
    return engine.execs


def _str_list(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"{what} must be a list of strings")
    return list(value)


@router.route("POST", "/containers/{id}/exec")
async def create(req: Request, engine: Engine) -> JSONResponse:
    c = engine.containers.get(req.params["id"])
    body = await req.json_object()
    session = ExecSession(
        id="", container_id=c.id,
        argv=_str_list(body.get("Cmd"), "Cmd"),
        env=_str_list(body.get("Env"), "Env"),
        user=str(body.get("User") or ""),
        working_dir=str(body.get("WorkingDir") or ""),
        privileged=bool(body.get("Privileged")),
        tty=bool(body.get("Tty")),
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout", True)),
        attach_stderr=bool(body.get("AttachStderr", True)),
        detach_keys=str(body.get("DetachKeys") or ""),
    )
    created = _execs(engine).create(c, session)
    return JSONResponse({"Id": created.id}, status=201)


@router.route("POST", "/exec/{id}/start")
async def start(req: Request, engine: Engine) -> EmptyResponse | HijackResponse:
    execs = _execs(engine)
    session = execs.get(req.params["id"])
    body = await req.json_object()
    if bool(body.get("Tty")) and not session.tty:
        session.tty = True
    if body.get("Detach"):
        engine.containers.spawn(_detached, execs, session)
        return EmptyResponse(200)

    async def run(conn: HijackedStream) -> None:
        sending = trio.Lock()  # stdout and stderr pumps share the connection

        async def send(stream_id: int, data: bytes) -> None:
            if session.tty:  # one raw stream, as the terminal gives it
                await conn.send_all(data)
                return
            wanted = session.attach_stdout if stream_id == 1 else session.attach_stderr
            if wanted:
                async with sending:
                    await conn.send_all(frame(stream_id, data))

        await execs.run(session, stdin=conn if session.attach_stdin else None, send=send)

    return HijackResponse(run, media_type=stream_media_type(tty=session.tty,
                                                            api_version=req.api_version))


async def _detached(execs: ExecManager, session: ExecSession) -> None:
    await execs.run(session, stdin=None, send=None)


@router.route("GET", "/exec/{id}/json")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    return JSONResponse(exec_inspect(_execs(engine).get(req.params["id"])))


@router.route("POST", "/exec/{id}/resize")
async def resize(req: Request, engine: Engine) -> EmptyResponse:
    session = _execs(engine).get(req.params["id"])
    rows, columns = req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0
    if session.tty and rows > 0 and columns > 0:
        session.size = (rows, columns)
        if session.master_fd >= 0:
            set_window(session.master_fd, rows, columns)
    return EmptyResponse(200)


__all__ = ["router"]
