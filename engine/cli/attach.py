"""Running attached: the attach → wait → start → stream sequence of `run` and `start -a`.

The order is the docker CLI's and it matters: attaching before the start means no
output is lost, and the `wait` request must be in (its headers back) before the
start, or a short-lived container could exit before anyone waits for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, Any

import attrs

from engine.cli.client import APIError, Client, ClientError, Hijacked, Response, quote_path
from engine.cli.errors import CommandError
from engine.cli.streams import STDERR, STDOUT, SYSTEMERR, FrameDemuxer, FramingError
from engine.containers.detachkeys import EscapeWatch, parse_detach_keys

#: What docker attach and docker exec print (and exit 1 with) after the detach keys.
DETACHED_MESSAGE = "read escape sequence"

# Signals a foreground `run` passes on to its container (docker's --sig-proxy).
_PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@attrs.define
class Outputs:
    """Where container output goes; real stdout/stderr by default, buffers in tests."""

    stdout: IO[bytes] = attrs.field(factory=lambda: sys.stdout.buffer)
    stderr: IO[bytes] = attrs.field(factory=lambda: sys.stderr.buffer)


def pump(chunks: Iterator[bytes] | list[bytes], tty: bool, outputs: Outputs) -> str | None:
    """Copy a container stream to stdout/stderr until it ends.

    Multiplexed frames unless the container has a TTY (then raw bytes). Returns the
    daemon's message if it reported an error in-band (stream 3).
    """
    demux = None if tty else FrameDemuxer()
    for data in chunks:
        if demux is None:
            outputs.stdout.write(data)
            outputs.stdout.flush()
            continue
        try:
            frames = demux.feed(data)
        except FramingError as exc:
            return f"error from daemon in stream: {exc}"
        for stream, payload in frames:
            if stream == SYSTEMERR:
                return payload.decode("utf-8", "replace").strip()
            target = outputs.stderr if stream == STDERR else outputs.stdout
            if stream in (STDOUT, STDERR):
                target.write(payload)
                target.flush()
    return None


def _copy_stdin(conn: Hijacked, fd: int, watch: EscapeWatch | None) -> None:
    """Feed our stdin to the container; half-close on EOF so it sees EOF too.

    With `watch` (a terminal), the detach keys end the session instead: the connection
    is shut both ways, so the output side stops too, and the process runs on.
    """
    try:
        while True:
            try:
                data = os.read(fd, 64 * 1024)
            except InterruptedError:
                continue
            if not data:
                break
            if watch is not None:
                data = watch.feed(data)
            if data:
                conn.send(data)
            if watch is not None and watch.detached:
                conn.shutdown()
                return
    except OSError:
        return  # the daemon went away or stdin broke: the output side decides the end
    conn.close_write()


@attrs.frozen
class Relayed:
    """How a session ended: an in-band daemon error, or a detach by keys."""

    failure: str | None
    detached: bool


def relay(conn: Hijacked, *, tty: bool, stdin: bool, detach_keys: str,
          outputs: Outputs) -> Relayed:
    """Our stdin to the stream (watched for the detach keys with a TTY) and the
    stream's output to ours, until the daemon ends it or we detach."""
    watch = EscapeWatch(parse_detach_keys(detach_keys)) if tty and stdin else None
    if stdin:
        threading.Thread(target=_copy_stdin, args=(conn, sys.stdin.fileno(), watch),
                         daemon=True).start()
    failure = pump(conn.chunks(), tty, outputs)
    return Relayed(failure, detached=watch is not None and watch.detached)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put the terminal in raw mode (keys go to the container as typed), then restore."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)  # TCSAFLUSH (the default) drops typed-ahead keys
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size() -> tuple[int, int]:
    """(rows, columns) of our terminal, (0, 0) if there is none."""
    for stream in (sys.stdout, sys.stdin):
        try:
            if stream.isatty():
                size = os.get_terminal_size(stream.fileno())
                return size.lines, size.columns
        except (OSError, ValueError):
            continue
    return 0, 0


def _resize(client: Client, resize_path: str) -> None:
    rows, cols = terminal_size()
    if rows and cols:
        try:
            client.call("POST", resize_path, {"h": rows, "w": cols}).close()
        except ClientError:
            pass  # the container may be gone already; a size is not worth an error


def follow_window(resize: Callable[[], None]) -> None:
    """Apply our terminal's size now and whenever it changes (SIGWINCH)."""
    resize()
    if hasattr(signal, "SIGWINCH") and sys.stdout.isatty():
        signal.signal(signal.SIGWINCH, lambda _s, _f: resize())


def resize_to_terminal(client: Client, resize_path: str) -> Callable[[], None]:
    return lambda: _resize(client, resize_path)


def _forward_signal(client: Client, container: str, name: str) -> None:
    def send() -> None:
        try:
            client.call("POST", f"/containers/{quote_path(container)}/kill",
                        {"signal": name.removeprefix("SIG")}).close()
        except ClientError:
            pass

    threading.Thread(target=send, daemon=True).start()


@contextlib.contextmanager
def _signal_proxy(client: Client, container: str) -> Iterator[None]:
    """While attached, signals we receive are sent to the container instead."""
    def handler_for(name: str) -> Callable[[int, FrameType | None], None]:
        return lambda _signum, _frame: _forward_signal(client, container, name)

    previous: dict[int, Any] = {}
    for name in _PROXIED:
        signum = getattr(signal, name)
        previous[signum] = signal.signal(signum, handler_for(name))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_status(wait: Response) -> int:
    """The exit status from a `wait` body; a daemon-side wait error is exit 125."""
    try:
        result = wait.raise_for_status().json() or {}
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}", 125) from None
    error = result.get("Error") or {}
    if isinstance(error, dict) and error.get("Message"):
        raise CommandError(f"Error waiting for container: {error['Message']}", 125)
    return int(result.get("StatusCode", 0))


def start_status(message: str) -> int:
    """docker's exit status for a failed start: 127 not found, 126 not executable, else 125.

    The runtime reports exec failures when the container starts, so the CLI maps the
    message the way `docker run` does (its runStartContainerErr).
    """
    text = message.lower()
    if ("executable file not found" in text or "no such file or directory" in text
            or "not found in $path" in text):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def start_container(client: Client, container: str) -> None:
    """POST /start; a refusal becomes the exit status docker would give."""
    try:
        client.call("POST", f"/containers/{quote_path(container)}/start").close()
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}",
                           start_status(exc.message)) from None


@attrs.define
class AttachPlan:
    """What to attach and how, derived from the container's config."""

    container: str
    tty: bool
    stdin: bool
    auto_remove: bool
    sig_proxy: bool = True
    detach_keys: str = ""


def run_attached(client: Client, plan: AttachPlan, start: bool = True,
                 outputs: Outputs | None = None) -> int:
    """Attach, (wait, start,) stream, and return the container's exit status.

    With `start`, the wait is asked for before the start (docker's order, so a fast
    exit is not missed); attaching to a running container asks after the stream ends.
    """
    outputs = outputs or Outputs()
    path = f"/containers/{quote_path(plan.container)}"
    stdin_is_tty = plan.stdin and plan.tty and sys.stdin.isatty()
    params: dict[str, Any] = {"stream": 1, "stdout": 1, "stderr": 1}
    if plan.stdin:
        params["stdin"] = 1
    if plan.detach_keys:
        params["detachKeys"] = plan.detach_keys
    with contextlib.ExitStack() as cleanup:
        conn = client.hijack("POST", f"{path}/attach", params)
        cleanup.callback(conn.close)
        wait: Response | None = None
        if start:
            condition = "removed" if plan.auto_remove else "next-exit"
            wait = client.request("POST", f"{path}/wait", {"condition": condition})
            cleanup.callback(wait.close)
            if not wait.ok:
                wait_status(wait)  # raises with the daemon's reason, before anything starts
            start_container(client, plan.container)
        raw = raw_terminal(sys.stdin.fileno()) if stdin_is_tty else contextlib.nullcontext()
        proxy = (_signal_proxy(client, plan.container) if plan.sig_proxy and not plan.tty
                 else contextlib.nullcontext())
        with raw, proxy:
            if plan.tty:
                follow_window(resize_to_terminal(client, f"{path}/resize"))
            ended = relay(conn, tty=plan.tty, stdin=plan.stdin,
                          detach_keys=plan.detach_keys, outputs=outputs)
        if ended.failure is not None:
            raise CommandError(ended.failure, 125)
        if ended.detached:
            if start:  # `run -it`: back to the shell, the container runs on
                return 0
            raise CommandError(DETACHED_MESSAGE, 1)  # what docker attach says, and its status
        if wait is None:
            wait = client.request("POST", f"{path}/wait")
            cleanup.callback(wait.close)
        return wait_status(wait)
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow
