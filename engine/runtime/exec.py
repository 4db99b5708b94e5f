"""Running a process inside a live container with the OCI runtime's `exec`, output captured.

`exec_capture` runs `<runtime> --root=R exec --process P.json --pid-file F <id>`: the
runtime joins the container's namespaces and cgroup, runs the process with the
container's user, env, cwd, capabilities and rlimits (taken from the bundle's
`config.json` `process`, with args replaced), waits for it and exits with its status.

The traps, and what is done about each:

- **Output pipes held open by leftovers.** A probe's children (`sh -c 'daemon &'`)
  inherit its stdout/stderr and can outlive it inside the container. So the capture
  never waits for EOF: once the runtime process has exited (it exits when the exec'd
  process does), whatever is in the pipe is drained without blocking and the pipe is
  closed. Output is read into a bounded buffer while the process runs, so a chatty
  process never blocks on a full pipe and never makes us hold more than `limit` bytes.
- **Killing on timeout.** Killing the runtime process alone would leave the exec'd
  process running in the container. Both runtimes give the exec'd process a session of
  its own (runc: it leads it; crun: a short-lived intermediate does), so on a timeout
  (or a cancellation) SIGKILL goes to the process (its host pid is in `--pid-file`), to
  its process group, found with getpgid, and to the runtime's group (the runtime is
  started in a new session): the probe's children die with it unless they made a
  session of their own. Never to a group moord belongs to.
- **The runtime's own failures** (no such executable, container gone) exit 255 or 1,
  which a real process could also return. The pid file tells them apart: the runtime
  writes it only once the process exists. Its message is read from `--log` (JSON).
- **A frozen container.** An exec into a paused container hangs until it is thawed;
  callers don't exec into paused containers, and after a kill the wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from engine.runtime.oci import OCIRuntime

REAP_WAIT = 5.0  # how long to wait for a killed runtime process to go away
_READ_SIZE = 65536


@attrs.frozen
class ExecUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


@attrs.frozen
class ExecResult:
    """How an exec ended.

    `exit_code` is the process's status (128+N when signal N ended it); -1 when it
    timed out or never ran, in which case `error` says why the runtime failed.
    """

    exit_code: int
    output: bytes = b""
    truncated: bool = False  # more output was produced than `limit`
    timed_out: bool = False
    error: str = ""

    @property
    def ran(self) -> bool:
        return not self.error


async def read_process_template(config_json: Path) -> dict[str, Any]:
    """The container's own `process` from its bundle: user, env, cwd, caps, rlimits."""

    def read() -> dict[str, Any]:
        with open(config_json, "rb") as f:
            spec = json.load(f)
        process = spec.get("process") if isinstance(spec, dict) else None
        if not isinstance(process, dict):
            raise ValueError(f"{config_json} has no process")
        return process

    return await trio.to_thread.run_sync(read)


def exec_process(template: Mapping[str, Any] | None, argv: Sequence[str], *,
                 env: Sequence[str] | None = None, user: ExecUser | None = None,
                 cwd: str | None = None,
                 capabilities: Sequence[str] | None = None) -> dict[str, Any]:
    """The OCI `process` for an exec: the container's, with argv and any overrides
    (`capabilities`: the full set for a privileged exec, as Docker's `--privileged`).

    Never a terminal: the output is captured, and a console size would be refused.
    """
    process: dict[str, Any] = dict(template) if template else {
        "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
    }
    process.pop("consoleSize", None)
    process["terminal"] = False
    process["args"] = list(argv)
    if env is not None:
        process["env"] = list(env)
    if user is not None:
        entry: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
        umask = (process.get("user") or {}).get("umask")
        if umask is not None:
            entry["umask"] = umask
        if user.additional_gids:
            entry["additionalGids"] = list(user.additional_gids)
        process["user"] = entry
    if cwd:
        process["cwd"] = cwd
    if capabilities is not None:
        caps = list(capabilities)
        process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                   "inheritable": [], "ambient": []}
    return process


@attrs.define(eq=False)
class _Capture:
    """A non-blocking pipe read end, kept up to `limit` bytes; the rest is counted away."""

    fd: int
    limit: int
    data: bytearray = attrs.field(factory=bytearray)
    truncated: bool = False
    eof: bool = False

    def drain(self) -> None:
        """Read what is there now, without waiting."""
        while not self.eof:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated = True

    async def pump(self) -> None:
        """Keep the pipe empty while the process runs, so it never blocks writing."""
        while not self.eof:
            await trio.lowlevel.wait_readable(self.fd)
            self.drain()


@attrs.frozen
class ExecFiles:
    """The per-exec files the runtime reads and writes, under a private directory."""

    process: Path
    pid_file: Path
    log: Path

    @classmethod
    def under(cls, directory: Path, container_id: str) -> ExecFiles:
        stem = directory / f"{container_id[:12]}-{secrets.token_hex(6)}"
        return cls(stem.with_suffix(".json"), stem.with_suffix(".pid"), stem.with_suffix(".log"))

    def write(self, process: Mapping[str, Any]) -> None:
        self.process.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.process, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(process).encode())

    def pid(self) -> int:
        try:
            text = self.pid_file.read_text().strip()
        except OSError:
            return 0
        return int(text) if text.isdigit() else 0

    def runtime_error(self) -> str:
        """The runtime's error-level messages from its JSON log (`--log-format=json`)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        messages = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                messages.append(str(entry.get("msg", "")).strip())
        return "; ".join(m for m in messages if m)

    def remove(self) -> None:
        for path in (self.process, self.pid_file, self.log):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def remove_stale_scratch(scratch: Path, container_id: str) -> None:
    """Drop per-exec files an earlier moord left for this container (it died mid-exec)."""
    for path in scratch.glob(f"{container_id[:12]}-*"):
        with contextlib.suppress(OSError):
            path.unlink()


async def exec_capture(runtime: OCIRuntime, container_id: str, argv: Sequence[str], *,
                       process: Mapping[str, Any] | None = None,
                       env: Sequence[str] | None = None, user: ExecUser | None = None,
                       cwd: str | None = None, kill_after: float, limit: int,
                       scratch: Path) -> ExecResult:
    """Run `argv` in the running container, stdout and stderr together; kill it after `kill_after` s.

    `process` is the container's own (see `read_process_template`); `scratch` a directory
    for the runtime's per-exec files (they are removed afterwards).
    """
    if not argv or not argv[0]:
        return ExecResult(exit_code=-1, error="no command to run")
    files = ExecFiles.under(scratch, container_id)
    spec = exec_process(process, argv, env=env, user=user, cwd=cwd)
    command = [runtime.path, f"--root={runtime.root}", f"--log={files.log}", "--log-format=json",
               "exec", "--pid-file", str(files.pid_file), "--process", str(files.process),
               container_id]
    try:
        await trio.to_thread.run_sync(files.write, spec)
        return await _run(command, files, kill_after, limit)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(files.remove)


async def _run(command: list[str], files: ExecFiles, kill_after: float,
               limit: int) -> ExecResult:
    read_end, write_end = os.pipe()  # both close-on-exec; the child gets dup2'd copies
    try:
        try:
            proc = await trio.lowlevel.open_process(
                command, stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end,
                start_new_session=True)
        finally:
            os.close(write_end)  # ours must go, or the pipe never reaches EOF
        os.set_blocking(read_end, False)
        capture = _Capture(read_end, limit)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(capture.pump)
            timed_out = await _wait_or_kill(proc, files, kill_after)
            nursery.cancel_scope.cancel()
        # the process has exited: take what it left in the pipe, not what leftovers may add
        capture.drain()
    finally:
        os.close(read_end)
    output = bytes(capture.data)
    if timed_out:
        return ExecResult(exit_code=-1, output=output, truncated=capture.truncated,
                          timed_out=True)
    code = proc.returncode if proc.returncode is not None else -1
    if code < 0:
        code = 128 - code  # the runtime itself died of a signal
    pid = await trio.to_thread.run_sync(files.pid)
    if pid <= 0 and code != 0:
        # the runtime failed before the process existed: its output is its own complaint
        message = await trio.to_thread.run_sync(files.runtime_error)
        return ExecResult(exit_code=-1, error=message or _first_line(output) or f"exit {code}")
    return ExecResult(exit_code=code, output=output, truncated=capture.truncated)


async def _wait_or_kill(proc: trio.Process, files: ExecFiles, kill_after: float) -> bool:
    """Wait for the runtime; past `kill_after` s (or if cancelled) kill the exec. True: timed out."""
    try:
        with trio.move_on_after(kill_after):
            await proc.wait()
            return False
    except BaseException:
        with trio.CancelScope(shield=True):
            await _kill(proc, files)
        raise
    with trio.CancelScope(shield=True):
        await _kill(proc, files)
    return True


async def _kill(proc: trio.Process, files: ExecFiles) -> None:
    """SIGKILL the exec'd process and its process group, and the runtime's; reap the runtime.

    The runtime makes a session for the exec'd process (runc: the process leads it; crun:
    an intermediate process that has gone), so the group is found from the process
    itself. The runtime is not reaped before its own group is signalled (nothing here
    polls it first), so its pid still names that group.
    """
    pid = await trio.to_thread.run_sync(files.pid)
    own_group = os.getpgrp()
    if pid > 1:
        try:
            group = os.getpgid(pid)
        except (ProcessLookupError, PermissionError):
            group = 0
        _signal_group(group, own_group)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _signal_group(proc.pid, own_group)  # start_new_session: the runtime leads its own group
    with trio.move_on_after(REAP_WAIT):
        await proc.wait()


def _signal_group(pgid: int, own_group: int) -> None:
    if pgid <= 1 or pgid == own_group:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _first_line(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    return text.splitlines()[0] if text else ""
