"""`POST /containers/{id}/attach`: a container's stdio over the hijacked connection.

Output comes from conmon's attach socket (framed unless the container has a TTY);
the client's bytes go to the container's stdin. With a TTY, the input is watched for
the detach keys (`detachKeys`, default ctrl-p ctrl-q): the session ends, a `detach`
event is published, and the container keeps running with its stdin open (conmon runs
with `--leave-stdin-open` unless the container's stdin closes with its first client:
`StdinOnce` without a TTY). Without a TTY, the client's half-close is the container's
end of input and the output goes on until the container exits.
"""

from __future__ import annotations

import socket as stdlib_socket
from typing import TYPE_CHECKING

import trio

from engine.api.http import HijackedStream, HijackResponse, Request
from engine.api.router import Router
from engine.api.streams import frame, stream_media_type, system_error_frame
from engine.containers.attach import CONMON_STDERR, CONMON_STDOUT, PACKET_SIZE, connect_attach_socket
from engine.containers.detachkeys import ByteSource, DetachingInput, EscapeWatch, parse_detach_keys
from engine.containers.model import Container, Status
from engine.errors import Conflict

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()

#: conmon takes stdin in packets; it writes each to the container's stdin as it comes
STDIN_CHUNK = 4096


@router.route("POST", "/containers/{id}/attach")
async def attach(req: Request, engine: Engine) -> HijackResponse:
    keys = parse_detach_keys(req.arg("detachKeys") or "")  # checked first, as dockerd does
    ref = req.params["id"]
    c = engine.containers.get(ref)
    if c.state.status is Status.PAUSED:
        raise Conflict(f"container {ref} is paused, unpause the container before attach")
    if c.state.status is Status.RESTARTING:
        raise Conflict(f"container {ref} is restarting, wait until the container is running")
    want_stream = req.flag("stream")
    want_logs = req.flag("logs")
    want_stdin = req.flag("stdin") and c.spec.open_stdin
    want_stdout = req.flag("stdout")
    want_stderr = req.flag("stderr")
    tty = c.spec.tty
    media = stream_media_type(tty=tty, api_version=req.api_version)
    hub = engine.containers.attach
    # register before answering: the client starts the container only after our 101
    waiter = hub.register(c.id) if want_stream and not c.state.is_live else None
    bundle = engine.containers.paths(c).bundle

    async def run(conn: HijackedStream) -> None:
        try:
            if want_logs:
                await _send_log_history(engine, c, conn, tty, want_stdout, want_stderr)
            if not want_stream:
                return
            if waiter is not None:
                if c.state.status is not Status.CREATED and not c.state.is_live:
                    return
                await waiter.ready.wait()
                if waiter.error or waiter.sock is None:
                    if waiter.error and not tty:
                        await conn.send_all(system_error_frame(waiter.error))
                    return
                sock = waiter.sock
                waiter.sock = None
            elif c.state.is_live:
                sock = await connect_attach_socket(bundle)
            else:
                return
            watch = EscapeWatch(keys) if tty and want_stdin else None
            with sock:
                await pump(sock, conn, tty=tty, stdout=want_stdout, stderr=want_stderr,
                           stdin=want_stdin, watch=watch)
            if watch is not None and watch.detached:
                engine.containers.publish(c, "detach")
        finally:
            if waiter is not None:
                hub.cancel(c.id, waiter)

    return HijackResponse(run, media_type=media)


async def _send_log_history(engine: Engine, c: Container, conn: HijackedStream, tty: bool,
                            stdout: bool, stderr: bool) -> None:
    from engine.api.handlers.logs import write_history

    await write_history(engine, c, conn, tty=tty, stdout=stdout, stderr=stderr)


async def pump(sock: trio.socket.SocketType, conn: HijackedStream, *, tty: bool, stdout: bool,
               stderr: bool, stdin: bool, watch: EscapeWatch | None = None) -> None:
    """Copy conmon's packets to the client (framed unless TTY) and the client's bytes to
    stdin, until the container's output ends or, with a TTY, the client's input does
    (its end, or the detach keys that `watch` looks for)."""
    async with trio.open_nursery() as nursery:
        if stdin:
            nursery.start_soon(_input_then_end, conn, sock, watch, tty, nursery.cancel_scope)
        while True:
            try:
                packet = await sock.recv(PACKET_SIZE)
            except OSError:
                break
            if not packet:
                break
            stream_id, payload = packet[0], packet[1:]
            if not payload:
                continue
            if stream_id == CONMON_STDOUT and stdout:
                await conn.send_all(payload if tty else frame(1, payload))
            elif stream_id == CONMON_STDERR and stderr:
                await conn.send_all(payload if tty else frame(2, payload))
        nursery.cancel_scope.cancel()


async def _input_then_end(conn: HijackedStream, sock: trio.socket.SocketType,
                          watch: EscapeWatch | None, tty: bool, session: trio.CancelScope) -> None:
    await _copy_stdin(DetachingInput(conn, watch) if watch is not None else conn, sock, watch)
    if tty:  # as in Docker: with a terminal, the end of input (or a detach) ends the attach
        session.cancel()


async def _copy_stdin(source: ByteSource, sock: trio.socket.SocketType,
                      watch: EscapeWatch | None) -> None:
    while True:
        data = await source.receive_some(65536)
        if not data:
            if watch is not None and watch.detached:
                return  # stdin stays open: the container goes on without this client
            # the client half-closed: conmon closes the container's stdin unless it
            # runs with --leave-stdin-open
            try:
                sock.shutdown(stdlib_socket.SHUT_WR)
            except OSError:
                pass
            return
        if not await _send_stdin(sock, data):
            return


async def _send_stdin(sock: trio.socket.SocketType, data: bytes) -> bool:
    for start in range(0, len(data), STDIN_CHUNK):
        try:
            await sock.send(data[start : start + STDIN_CHUNK])
        except OSError:
            return False
    return True


__all__ = ["pump", "router"]
