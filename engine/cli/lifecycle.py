"""Commands that act on existing containers: start, attach, stop, kill, restart, rm, ...

Those that take several names report a failure per name and go on with the others,
as docker does (`app.for_each`).
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from engine.cli.app import App, confirm, describe, for_each, out, pass_app
from engine.cli.attach import AttachPlan, run_attached
from engine.cli.client import ClientError, ParamValue, container_path
from engine.cli.errors import CommandError
from engine.cli.formatting import human_size
from engine.cli.options import OptionError, build_filters


def _call_each(app: App, containers: tuple[str, ...], method: str, suffix: str,
               params: Mapping[str, ParamValue] | None = None) -> None:
    """Call one endpoint per container, printing each name that succeeded (`for_each`)."""
    client = app.client

    def one(name: str) -> None:
        client.call(method, container_path(name, suffix), params).close()
        out(name + "\n")

    for_each(containers, one)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("--detach-keys", metavar="STRING", default="",
              help="Override the key sequence for detaching a container")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def start(app: App, attach: bool, detach_keys: str, interactive: bool,
          containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    client = app.client
    if attach or interactive:
        if len(containers) > 1:
            raise CommandError("you cannot start and attach multiple containers at once")
        info = client.get_json(container_path(containers[0], "/json"))
        config = info.get("Config") or {}
        host_config = info.get("HostConfig") or {}
        plan = AttachPlan(info["Id"], tty=bool(config.get("Tty")),
                          stdin=interactive and bool(config.get("OpenStdin")),
                          auto_remove=bool(host_config.get("AutoRemove")),
                          detach_keys=detach_keys)
        raise SystemExit(run_attached(client, plan))
    _call_each(app, containers, "POST", "/start")


@click.command()
@click.option("--detach-keys", metavar="STRING", default="",
              help="Override the key sequence for detaching a container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True,
              help="Proxy all received signals to the process (default true)")
@click.argument("container")
@pass_app
def attach(app: App, detach_keys: str, no_stdin: bool, sig_proxy: bool, container: str) -> None:
    """Attach to a running container's input and output.

    Exits with the container's status when it stops.
    """
    client = app.client
    try:
        info = client.get_json(container_path(container, "/json"))
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CommandError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CommandError("You cannot attach to a paused container, unpause it first")
    config = info.get("Config") or {}
    plan = AttachPlan(info["Id"], tty=bool(config.get("Tty")),
                      stdin=not no_stdin and bool(config.get("OpenStdin")),
                      auto_remove=False, sig_proxy=sig_proxy, detach_keys=detach_keys)
    try:
        status = run_attached(client, plan, start=False)
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    raise SystemExit(status)


@click.command()
@click.option("-s", "--signal", "signal_", metavar="STRING",
              help="Signal to send to the container")
@click.option("-t", "--timeout", "--time", "timeout", type=int, metavar="INT",
              help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def stop(app: App, signal_: str | None, timeout: int | None,
         containers: tuple[str, ...]) -> None:
    """Stop one or more running containers.

    Sends the container's stop signal (default SIGTERM), then SIGKILL once the grace
    period (-t, default the container's stop timeout) has passed.
    """
    _call_each(app, containers, "POST", "/stop", {"t": timeout, "signal": signal_})


@click.command()
@click.option("-s", "--signal", "signal_", metavar="STRING",
              help="Signal to send to the container (default KILL)")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def kill(app: App, signal_: str | None, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    _call_each(app, containers, "POST", "/kill", {"signal": signal_})


@click.command()
@click.option("-s", "--signal", "signal_", metavar="STRING",
              help="Signal to send to the container")
@click.option("-t", "--timeout", "--time", "timeout", type=int, metavar="INT",
              help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def restart(app: App, signal_: str | None, timeout: int | None,
            containers: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    _call_each(app, containers, "POST", "/restart", {"t": timeout, "signal": signal_})


@click.command()
@click.option("-f", "--force", is_flag=True,
              help="Force the removal of a running container (uses SIGKILL)")
@click.option("-l", "--link", is_flag=True, help="Remove the specified link")
@click.option("-v", "--volumes", is_flag=True,
              help="Remove anonymous volumes associated with the container")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def rm(app: App, force: bool, link: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers (with --link: links, named `parent/alias`)."""
    _call_each(app, containers, "DELETE", "",
               {"force": force or None, "v": volumes or None, "link": link or None})


def _simple_action(action: str, doc: str) -> click.Command:
    @click.command(name=action, help=doc)
    @click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
    @pass_app
    def command(app: App, containers: tuple[str, ...]) -> None:
        _call_each(app, containers, "POST", f"/{action}")

    return command


pause = _simple_action("pause", "Pause all processes within one or more containers.")
unpause = _simple_action("unpause", "Unpause all processes within one or more containers.")


@click.command()
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def wait(app: App, containers: tuple[str, ...]) -> None:
    """Wait for containers to stop, then print their exit codes."""
    client = app.client

    def one(name: str) -> None:
        result = client.post_json(container_path(name, "/wait")) or {}
        error = result.get("Error") or {}
        if isinstance(error, dict) and error.get("Message"):
            raise CommandError(str(error["Message"]))
        out(f"{result.get('StatusCode', 0)}\n")

    for_each(containers, one)


@click.command()
@click.argument("container")
@click.argument("new_name", metavar="NEW_NAME")
@pass_app
def rename(app: App, container: str, new_name: str) -> None:
    """Rename a container."""
    try:
        app.client.call("POST", container_path(container, "/rename"), {"name": new_name}).close()
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"until=<timestamp>\")")
@pass_app
def prune(app: App, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    if not force and not confirm("WARNING! This will remove all stopped containers.\n"
                                 "Are you sure you want to continue? [y/N] "):
        return
    try:
        result = app.client.post_json("/containers/prune",
                                      {"filters": build_filters(filters)}) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        out("Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted) + "\n")
    out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
