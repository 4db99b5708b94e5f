"""`moor exec`: a command in a running container, as `docker exec` runs it.

Create the exec session, then start it detached (`-d`) or attached over a hijacked
connection: raw bytes with `-t`, frames without. With a terminal, our window size
goes with the start and follows SIGWINCH, and the detach keys leave the process
running. moor exits with the process's exit code, read from `/exec/{id}/json`.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from engine.cli.app import App, describe, exit_code, pass_app
from engine.cli.attach import (
    DETACHED_MESSAGE,
    Outputs,
    follow_window,
    raw_terminal,
    relay,
    resize_to_terminal,
    terminal_size,
)
from engine.cli.client import Client, ClientError, quote_path
from engine.cli.errors import CommandError
from engine.cli.options import OptionError, build_env

EXEC_CONTEXT = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


@click.command(context_settings=EXEC_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("--detach-keys", metavar="STRING", default="",
              help="Override the key sequence for detaching a container")
@click.option("-e", "--env", multiple=True, metavar="LIST", help="Set environment variables")
@click.option("--env-file", multiple=True, metavar="LIST",
              help="Read in a file of environment variables")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-u", "--user", default="", metavar="STRING",
              help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", default="", metavar="STRING",
              help="Working directory inside the container")
@click.argument("container")
@click.argument("command", nargs=-1, required=True)
@pass_app
def exec_(app: App, detach: bool, detach_keys: str, env: tuple[str, ...],
          env_file: tuple[str, ...], interactive: bool, privileged: bool, tty: bool, user: str,
          workdir: str, container: str, command: tuple[str, ...]) -> None:
    """Execute a command in a running container."""
    if tty and interactive and not detach and not sys.stdin.isatty():
        raise CommandError("the input device is not a TTY", 1)
    client = app.client
    try:
        config = _exec_config(command, env, env_file, user, workdir, privileged, tty,
                              interactive and not detach, detach, detach_keys)
        exec_id = client.post_json(f"/containers/{quote_path(container)}/exec",
                                   json=config)["Id"]
        if detach:
            client.call("POST", f"/exec/{exec_id}/start",
                        json={"Detach": True, "Tty": tty}).close()
            return
        status = _run_attached(client, exec_id, config)
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    raise SystemExit(status)


def _exec_config(command: tuple[str, ...], env: tuple[str, ...], env_file: tuple[str, ...],
                 user: str, workdir: str, privileged: bool, tty: bool, stdin: bool,
                 detach: bool, detach_keys: str) -> dict[str, Any]:
    """The body of `POST /containers/{id}/exec`, as the docker CLI fills it."""
    config: dict[str, Any] = {
        "User": user, "Privileged": privileged, "Tty": tty,
        "AttachStdin": stdin, "AttachStdout": not detach, "AttachStderr": not detach,
        "DetachKeys": detach_keys, "Env": build_env(env, env_file), "WorkingDir": workdir,
        "Cmd": list(command),
    }
    rows, columns = terminal_size() if tty else (0, 0)
    if rows and columns:
        config["ConsoleSize"] = [rows, columns]
    return config


def _run_attached(client: Client, exec_id: str, config: dict[str, Any]) -> int:
    tty, stdin = bool(config["Tty"]), bool(config["AttachStdin"])
    body = {"Detach": False, "Tty": tty}
    if "ConsoleSize" in config:
        body["ConsoleSize"] = config["ConsoleSize"]
    with exit_code(1):
        conn = client.hijack("POST", f"/exec/{exec_id}/start", json=body)
    with contextlib.closing(conn):
        terminal = (raw_terminal(sys.stdin.fileno()) if tty and stdin and sys.stdin.isatty()
                    else contextlib.nullcontext())
        with terminal:
            if tty:
                follow_window(resize_to_terminal(client, f"/exec/{exec_id}/resize"))
            ended = relay(conn, tty=tty, stdin=stdin, detach_keys=str(config["DetachKeys"]),
                          outputs=Outputs())
    if ended.failure is not None:
        raise CommandError(ended.failure, 126)
    if ended.detached:
        raise CommandError(DETACHED_MESSAGE, 1)
    return int(client.get_json(f"/exec/{exec_id}/json").get("ExitCode") or 0)


__all__ = ["exec_"]
