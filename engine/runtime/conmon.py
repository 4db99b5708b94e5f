"""Speaking to conmon: the start and sync pipes at launch, and the control FIFO after.

conmon 2.1.6 has no pipe flags: `_OCI_SYNCPIPE` and `_OCI_STARTPIPE` name inherited
fds. It blocks on the start pipe before it forks (our chance to move it out of
moord's cgroup), double-forks (the first child writes `-P` and exits), runs the OCI
runtime's `create`, and answers on the sync pipe with `{"data": <pid>}` or
`{"data": -1, "message": …}`. Then the caller runs `<runtime> start`.

While the container runs, conmon reads `<bundle>/ctl`, a FIFO of lines
`<kind> <height> <width>`: kind 1 is a terminal resize, kind 2 "reopen the log file".
`write_ctl` is the one place that writes it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio

from engine.errors import SystemFailure
from engine.runtime.exits import read_pid_file
from engine.runtime.interface import LaunchOptions, RuntimeCreateFailed, RuntimeTarget

log = logging.getLogger(__name__)

CREATE_TIMEOUT = 240.0
CTL_RESIZE = 1
CTL_REOPEN_LOG = 2


@attrs.frozen
class ConmonLaunch:
    """Everything conmon needs to create one container."""

    target: RuntimeTarget
    options: LaunchOptions
    runtime_path: str
    runtime_root: Path
    conmon_path: str
    socket_dir: Path

    def argv(self) -> list[str]:
        target, options = self.target, self.options
        args = [
            self.conmon_path,
            "--api-version",
            "-c", target.id,
            "-u", target.id,
            "-n", options.name,
            "-r", self.runtime_path,
            "--runtime-arg", f"--root={self.runtime_root}",
            "-b", str(target.bundle),
            "-p", str(target.userdata / "pidfile"),
            "-P", str(target.userdata / "conmon.pid"),
            "-l", f"k8s-file:{options.log_path}" if options.keep_log else "none",
            "--persist-dir", str(target.userdata),
            "--socket-dir-path", str(self.socket_dir),
            "--full-attach",
            "--log-level", "error",
        ]
        if options.stdin:
            args.append("-i")
            if options.leave_stdin_open:
                args.append("--leave-stdin-open")
        if options.tty:
            args.append("-t")
        return args


@attrs.frozen
class Launched:
    conmon_pid: int
    container_pid: int


async def launch(
    spec: ConmonLaunch,
    *,
    place: Callable[[int], Awaitable[None]] | None = None,
) -> Launched:
    """Run conmon until the container is created (not started) and return the pids."""
    sync_parent, sync_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    start_parent, start_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "_OCI_SYNCPIPE": str(sync_child.fileno()),
        "_OCI_STARTPIPE": str(start_child.fileno()),
    }
    stderr_path = spec.target.userdata / "conmon.stderr"
    try:
        stderr_file = await trio.to_thread.run_sync(open, stderr_path, "wb")
        with stderr_file:
            proc = await trio.lowlevel.open_process(
                spec.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
                pass_fds=(sync_child.fileno(), start_child.fileno()),
                cwd=str(spec.target.userdata),
                env=env,
                start_new_session=True,
            )
        sync_child.close()
        start_child.close()
        try:
            if place is not None:
                await place(proc.pid)
            start_parent.send(b"\0")
            # the first child only forks and writes -P; it exits at once
            returncode = await proc.wait()
        except BaseException:
            with trio.CancelScope(shield=True):
                proc.kill()
                await proc.wait()
            raise
        if returncode != 0:
            raise SystemFailure(f"conmon failed to start: {_stderr_text(stderr_path)}")
        conmon_pid = read_pid_file(spec.target.userdata / "conmon.pid")
        message = await _read_sync_message(sync_parent, stderr_path)
    finally:
        for s in (sync_parent, sync_child, start_parent, start_child):
            s.close()
    pid = message.get("data")
    if not isinstance(pid, int) or pid <= 0:
        text = str(message.get("message") or _stderr_text(stderr_path) or "unknown error")
        raise RuntimeCreateFailed(text.strip())
    return Launched(conmon_pid=conmon_pid, container_pid=pid)


async def _read_sync_message(sock: socket.socket, stderr_path: Path) -> dict[str, object]:
    tsock = trio.socket.from_stdlib_socket(sock.dup())
    try:
        with trio.move_on_after(CREATE_TIMEOUT) as scope:
            data = await tsock.recv(65536)
        if scope.cancelled_caught:
            raise SystemFailure(f"conmon did not report the container's creation within "
                                f"{CREATE_TIMEOUT:.0f} s")
    finally:
        tsock.close()
    if not data:
        raise RuntimeCreateFailed(
            _stderr_text(stderr_path) or "conmon exited before the container was created")
    line = data.split(b"\n", 1)[0]
    try:
        message = json.loads(line)
    except ValueError:
        raise SystemFailure(f"conmon sent an unreadable sync message: {line!r}") from None
    if not isinstance(message, dict):
        raise SystemFailure(f"conmon sent an unexpected sync message: {line!r}")
    return message


def _stderr_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def attach_socket_path(bundle: Path) -> tuple[int, str]:
    """An O_PATH fd on the bundle and a short path to its attach socket through /proc.

    A long data root can push `<bundle>/attach` past the 108-byte sun_path limit;
    `/proc/self/fd/N/attach` is always short. The caller closes the fd after connect.
    """
    fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY)
    return fd, f"/proc/self/fd/{fd}/attach"


def write_ctl(bundle: Path, kind: int, height: int = 0, width: int = 0) -> None:
    """One message on conmon's control FIFO (blocking, brief; never waits for a reader).

    Raises OSError when conmon is not listening (it may be exiting with its container).
    """
    fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, f"{kind} {height} {width}\n".encode())
    finally:
        os.close(fd)
