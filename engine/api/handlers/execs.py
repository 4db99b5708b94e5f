"""`docker exec`: create, start (attached over a hijacked connection, or detached),
inspect, resize.

An attached exec outlives its client, as under Docker: when the client hangs up, or
types the detach keys into a TTY exec (an `exec_detach` event), the process runs on
with its output dropped, and its exit code is recorded when it ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from engine.api.http import (
    ClientGone,
    EmptyResponse,
    HijackedStream,
    HijackResponse,
    JSONResponse,
    Request,
)
from engine.api.router import Router
from engine.api.streams import frame, stream_media_type
from engine.api.wire import fields
from engine.api.wire.execs import exec_inspect
from engine.containers.detachkeys import ByteSource, DetachingInput, EscapeWatch, parse_detach_keys
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


_CREATE_FIELDS = ("Cmd", "Env", "User", "WorkingDir", "Privileged", "Tty", "AttachStdin",
                  "AttachStdout", "AttachStderr", "DetachKeys", "ConsoleSize")
_START_FIELDS = ("Detach", "Tty", "ConsoleSize")


@router.route("POST", "/containers/{id}/exec")
async def create(req: Request, engine: Engine) -> JSONResponse:
    c = engine.containers.get(req.params["id"])
    body = fields.go_spelling(await req.json_object(), _CREATE_FIELDS)
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
    session.size = _console_size(body.get("ConsoleSize"))
    try:
        parse_detach_keys(session.detach_keys)
    except InvalidParameter:
        raise InvalidParameter(f"Invalid escape keys ({session.detach_keys}) provided") from None
    created = _execs(engine).create(c, session)
    return JSONResponse({"Id": created.id}, status=201)


def _console_size(value: object) -> tuple[int, int]:
    """`ConsoleSize` ([height, width]): the size the exec's terminal starts at."""
    if value is None:
        return (0, 0)
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and v >= 0 for v in value)):
        raise InvalidParameter("invalid ConsoleSize: expected [height, width]")
    return (value[0], value[1])


@router.route("POST", "/exec/{id}/start")
async def start(req: Request, engine: Engine) -> EmptyResponse | HijackResponse:
    execs = _execs(engine)
    session = execs.get(req.params["id"])
    body = fields.go_spelling(await req.json_object(), _START_FIELDS)
    # the start's Tty says how the stream is framed, as dockerd does: raw, or in 8-byte
    # frames (a TTY exec's output then all as stdout) for a client that asks for them
    raw = bool(body.get("Tty"))
    if body.get("ConsoleSize"):
        session.size = _console_size(body.get("ConsoleSize"))
    execs.check_startable(session)
    if body.get("Detach"):
        engine.containers.spawn(_detached, execs, session)
        return EmptyResponse(200)

    async def run(conn: HijackedStream) -> None:
        sending = trio.Lock()  # stdout and stderr pumps share the connection
        client_gone = False

        async def send(stream_id: int, data: bytes) -> None:
            """To the client while it listens; after it left (or detached) the process
            runs on, as under Docker, and its output is dropped."""
            nonlocal client_gone
            if client_gone:
                return
            if stream_id == 0:
                stream_id = 1  # the terminal's one stream
            elif not (session.attach_stdout if stream_id == 1 else session.attach_stderr):
                return
            try:
                async with sending:  # raw, or frames
                    await conn.send_all(data if raw else frame(stream_id, data))
            except ClientGone:
                client_gone = True

        stdin: ByteSource | None = conn if session.attach_stdin else None
        if stdin is not None and session.tty:
            watch = EscapeWatch(parse_detach_keys(session.detach_keys))
            stdin = _HangUpOnDetach(DetachingInput(conn, watch), conn,
                                    lambda: _detached_by_keys(engine, execs, session))
        await execs.run(session, stdin=stdin, send=send)

    return HijackResponse(run, media_type=stream_media_type(tty=raw,
                                                            api_version=req.api_version))


@attrs.define
class _HangUpOnDetach:
    """The exec's input; when the detach keys end it, the client is hung up on at once
    (it waits for the end of the stream) and `on_detach` runs."""

    source: DetachingInput
    conn: HijackedStream
    on_detach: Callable[[], None]

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        data = await self.source.receive_some(max_bytes)
        if not data and self.source.watch.detached:
            self.on_detach()
            await self.conn.aclose()
        return data


def _detached_by_keys(engine: Engine, execs: ExecManager, session: ExecSession) -> None:
    c = execs.containers.get(session.container_id)
    engine.containers.publish(c, "exec_detach", execID=session.id)


async def _detached(execs: ExecManager, session: ExecSession) -> None:
    await execs.run(session, stdin=None, send=None)


@router.route("GET", "/exec/{id}/json")
async def inspect(req: Request, engine: Engine) -> JSONResponse:
    return JSONResponse(exec_inspect(_execs(engine).get(req.params["id"])))


@router.route("POST", "/exec/{id}/resize")
async def resize(req: Request, engine: Engine) -> EmptyResponse:
    session = _execs(engine).get(req.params["id"])
    rows, columns = req.terminal_size()
    if session.tty and rows > 0 and columns > 0:
        session.size = (rows, columns)
        if session.master_fd >= 0:
            set_window(session.master_fd, rows, columns)
    return EmptyResponse(200)


__all__ = ["router"]
