"""`docker exec`: extra processes in a running container, through the runtime's `exec`.

A session is created (`POST /containers/{id}/exec`), then started attached (its stdin,
stdout and stderr carried over the hijacked connection) or detached. The process is
the container's own (user, env, cwd, capabilities from its bundle), with the
session's argv and overrides; the runtime waits for it, and its exit code is recorded
before the attached stream is closed, so `GET /exec/{id}/json` right after says how
it ended. Sessions live in memory: an exec does not outlive moord, as it does not
outlive dockerd's shim's client either. A finished one stays inspectable for
FORGET_AFTER (dockerd's exec GC drops it 5 to 10 minutes after its exit), or until its
container is removed: kept for the container's lifetime, the sessions of an exec loop or
a health probe run from outside grew moord by ~0.7 kB an exec (the soak, bench/README.md).

With `Tty`, the runtime makes a pseudo-terminal and hands its master end over a
console socket (`--console-socket`, SCM_RIGHTS); the session relays it raw, and
`resize` sets its window size.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from engine import ids
from engine.containers.execenv import exec_environment
from engine.containers.model import Container, Status
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.runtime.exec import ExecFiles, ExecUser, exec_process, read_process_template
from engine.runtime.spec import host_facts
from engine.runtime.users import resolve_user

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

log = logging.getLogger(__name__)

#: After the process has exited, how long its output pipes may keep delivering (a
#: background child holding them open must not hold the stream open for ever).
DRAIN_GRACE = 0.2
#: How long a finished session stays inspectable (`GET /exec/{id}/json`), in seconds.
FORGET_AFTER = 300.0
_CHUNK = 64 * 1024

Send = Callable[[int, bytes], Awaitable[None]]  # (stream 1/2, or 0 for a terminal; data)


@attrs.define(eq=False)
class ExecSession:
    id: str
    container_id: str
    argv: list[str]
    env: list[str] = attrs.field(factory=list)
    user: str = ""
    working_dir: str = ""
    privileged: bool = False
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    detach_keys: str = ""
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    master_fd: int = -1  # the pty's master end while a TTY exec runs
    size: tuple[int, int] = (0, 0)  # rows, columns asked for before the pty existed
    created: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: float | None = None  # time.monotonic() when the process ended


class ExecManager:
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.sessions: dict[str, ExecSession] = {}

    def get(self, exec_id: str) -> ExecSession:
        session = self.sessions.get(exec_id)
        if session is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    def _running(self, c: Container) -> None:
        if c.state.status is Status.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not c.state.is_live:
            raise Conflict(f"Container {c.id} is not running")

    def create(self, c: Container, session: ExecSession) -> ExecSession:
        self._running(c)
        if not session.argv or not session.argv[0]:
            raise InvalidParameter("No exec command specified")
        self._forget_finished()
        session.id = ids.new_id()
        session.container_id = c.id
        self.sessions[session.id] = session
        self.containers.publish(c, "exec_create: " + " ".join(session.argv), execID=session.id)
        return session

    def _forget_finished(self) -> None:
        """Drop the sessions that ended FORGET_AFTER ago, and those of containers that
        are gone (a created, never started one stays with its container, as in dockerd)."""
        existing = {c.id for c in self.containers.all()}
        expired = time.monotonic() - FORGET_AFTER
        for exec_id, session in list(self.sessions.items()):
            if session.running:
                continue
            ended = session.finished_at is not None and session.finished_at < expired
            if ended or session.container_id not in existing:
                del self.sessions[exec_id]

    def check_startable(self, session: ExecSession) -> Container:
        """Refuse a second start, or a start into a container that stopped or paused
        since the create (before the API answers: after a 101 no error can be sent)."""
        if session.running:
            raise Conflict(f"Error: Exec command {session.id} is already running")
        if session.started:
            raise Conflict(f"Error: Exec command {session.id} has already run")
        c = self.containers.get(session.container_id)
        self._running(c)
        return c

    async def run(self, session: ExecSession, *, stdin: Any | None, send: Send | None) -> int:
        """Run the session's process; `stdin` is a receive stream (None: no input) and
        `send` gets its output (None: discarded, a detached exec). Returns the exit code."""
        c = self.check_startable(session)
        session.started = True
        m = self.containers
        runtime = m.runtime.command_line(c.runtime)
        paths = m.paths(c)
        template = await read_process_template(paths.config_json)
        user = None
        home = None
        if session.user:
            found = await trio.to_thread.run_sync(resolve_user, paths.rootfs, session.user,
                                                  c.host.group_add)
            user = ExecUser(found.uid, found.gid, tuple(found.additional_gids))
            home = found.home or "/"
        env = exec_environment(list(template.get("env") or []), user_env=c.spec.env,
                               terminal=session.tty, home=home, extra=session.env)
        spec = exec_process(template, session.argv, env=env, user=user,
                            cwd=session.working_dir or None,
                            capabilities=host_facts().capabilities if session.privileged
                            else None)
        files = ExecFiles.under(m.config.exec_root / "exec", c.id)
        command = [runtime.path, f"--root={runtime.root}", f"--log={files.log}",
                   "--log-format=json", "exec", "--pid-file", str(files.pid_file),
                   "--process", str(files.process)]
        if session.tty:
            spec["terminal"] = True
            if session.size != (0, 0):
                spec["consoleSize"] = {"height": session.size[0], "width": session.size[1]}
            command += ["--tty", "--console-socket", str(files.process.with_suffix(".sock"))]
        command.append(c.id)
        await trio.to_thread.run_sync(files.write, spec)
        m.publish(c, "exec_start: " + " ".join(session.argv), execID=session.id)
        session.running = True
        try:
            if session.tty:
                code = await self._supervise_tty(session, command, files, stdin, send)
            else:
                code = await self._supervise(session, command, files, stdin, send)
        finally:
            session.running = False
            session.finished_at = time.monotonic()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(files.remove)
        session.exit_code = code
        m.publish(c, "exec_die", execID=session.id, exitCode=str(code))
        return code

    async def _supervise_tty(self, session: ExecSession, command: list[str], files: ExecFiles,
                             stdin: Any | None, send: Send | None) -> int:
        """A TTY exec: the pty's master end relayed raw both ways."""
        sock_path = files.process.with_suffix(".sock")
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await listener.bind(str(sock_path))
        listener.listen(1)
        proc: trio.Process | None = None
        try:
            proc = await trio.lowlevel.open_process(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            with trio.move_on_after(10):
                session.master_fd = await _receive_master(listener)
            if session.master_fd < 0:
                await proc.wait()
                return await self._failed_start(session, files, send, proc.returncode or 255)
            if session.size != (0, 0):
                set_window(session.master_fd, *session.size)
            master = trio.lowlevel.FdStream(os.dup(session.master_fd))
            async with master, trio.open_nursery() as nursery:
                if stdin is not None:
                    nursery.start_soon(_pump_in_tty, stdin, master)
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(_pump_out_tty, master, send)
                    await proc.wait()
                    session.pid = await trio.to_thread.run_sync(files.pid)
                    pumps.cancel_scope.deadline = trio.current_time() + DRAIN_GRACE
                nursery.cancel_scope.cancel()
        finally:
            listener.close()
            if session.master_fd >= 0:
                os.close(session.master_fd)
                session.master_fd = -1
            with contextlib.suppress(FileNotFoundError):
                sock_path.unlink()
            if proc is not None and proc.returncode is None:
                with trio.CancelScope(shield=True):
                    proc.kill()
                    await proc.wait()
        assert proc is not None
        assert proc.returncode is not None
        code = proc.returncode
        return 128 - code if code < 0 else code

    async def _failed_start(self, session: ExecSession, files: ExecFiles, send: Send | None,
                            code: int) -> int:
        error = await trio.to_thread.run_sync(files.runtime_error)
        if error and send is not None:
            await send(0, f"OCI runtime exec failed: {error}\r\n".encode())
        if not error:
            return code
        return 127 if "not found" in error.lower() or "no such file" in error.lower() else 126

    async def _supervise(self, session: ExecSession, command: list[str], files: ExecFiles,
                         stdin: Any | None, send: Send | None) -> int:
        proc = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            async with trio.open_nursery() as nursery:
                async with trio.open_nursery() as pumps:
                    assert proc.stdout is not None
                    assert proc.stderr is not None
                    pumps.start_soon(_pump_out, proc.stdout, 1, send)
                    pumps.start_soon(_pump_out, proc.stderr, 2, send)
                    if stdin is not None and proc.stdin is not None:
                        nursery.start_soon(_pump_in, stdin, proc.stdin)
                    await proc.wait()
                    session.pid = await trio.to_thread.run_sync(files.pid)
                    # the process is gone; what it wrote is in the pipes: read it, but
                    # do not wait for children that kept them open
                    pumps.cancel_scope.deadline = trio.current_time() + DRAIN_GRACE
                nursery.cancel_scope.cancel()
        finally:
            if proc.returncode is None:
                with trio.CancelScope(shield=True):
                    proc.kill()
                    await proc.wait()
        code = proc.returncode
        assert code is not None
        if code < 0:
            code = 128 - code  # killed by signal N: 128+N, as a shell reports it
        if code in (1, 255) and not session.pid:
            error = await trio.to_thread.run_sync(files.runtime_error)
            if error:
                log.info("exec %s could not start: %s", session.id[:12], error)
                if send is not None:
                    await send(2, f"OCI runtime exec failed: {error}\n".encode())
                code = 127 if "not found" in error.lower() or "no such file" in error.lower() else 126
        return code


async def _receive_master(listener: trio.socket.SocketType) -> int:
    """The pty master the runtime sends over the console socket (SCM_RIGHTS)."""
    conn, _ = await listener.accept()
    with conn:
        while True:
            await trio.lowlevel.wait_readable(conn.fileno())
            try:
                with _as_socket(conn) as raw:
                    _, fds, _, _ = socket.recv_fds(raw, 4096, 1)
            except BlockingIOError:
                continue
            if not fds:
                raise OSError("the runtime closed the console socket without a terminal")
            return fds[0]


def _as_socket(conn: trio.socket.SocketType) -> socket.socket:
    return socket.socket(fileno=os.dup(conn.fileno()))


def set_window(fd: int, rows: int, columns: int) -> None:
    """The kernel's window size holds 16 bits a side; the API's sizes are 32-bit."""
    rows, columns = min(rows, 0xFFFF), min(columns, 0xFFFF)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def _pump_out(stream: trio.abc.ReceiveStream, stream_id: int, send: Send | None) -> None:
    while True:
        data = await stream.receive_some(_CHUNK)
        if not data:
            return
        if send is not None:
            await send(stream_id, bytes(data))


async def _pump_out_tty(master: trio.lowlevel.FdStream, send: Send | None) -> None:
    try:
        while True:
            data = await master.receive_some(_CHUNK)
            if not data:
                return
            if send is not None:
                await send(0, bytes(data))
    except (OSError, trio.BrokenResourceError):  # EIO: the last process let go of the pty
        return


async def _pump_in_tty(source: Any, master: trio.lowlevel.FdStream) -> None:
    """Keys into the terminal; the client's half-close ends nothing (a shell waits)."""
    try:
        while True:
            data = await source.receive_some(_CHUNK)
            if not data:
                return
            await master.send_all(data)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _pump_in(source: Any, sink: trio.abc.SendStream) -> None:
    """The client's input into the process; the client's half-close is the process's EOF."""
    try:
        while True:
            data = await source.receive_some(_CHUNK)
            if not data:
                break
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await sink.aclose()


__all__ = ["ExecManager", "ExecSession"]
