"""`moor events` and `moor update`: watching the engine, changing a container's policy."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from engine.cli import resourceflags
from engine.cli.app import App, for_each, out, pass_app
from engine.cli.client import quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import go_json, render_template
from engine.cli.options import OptionError, api_timestamp, build_filters, restart_policy


def event_line(event: dict[str, Any]) -> str:
    """One event as `docker events` prints it: local time, type, action, actor, attributes."""
    nanos = int(event.get("timeNano") or int(event.get("time") or 0) * 1_000_000_000)
    seconds, frac = divmod(nanos, 1_000_000_000)
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{frac:09d}" + f"{offset[:3]}:{offset[3:]}"
    actor = event.get("Actor") or {}
    line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line + "\n"


@click.command()
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter output based on conditions provided")
@click.option("--format", "format_", metavar="STRING",
              help="Format the output using a template ('json' for one JSON object per line)")
@click.option("--since", metavar="STRING", help="Show all events created since timestamp")
@click.option("--until", metavar="STRING", help="Stream events until this timestamp")
@pass_app
def events(app: App, filters: tuple[str, ...], format_: str | None, since: str | None,
           until: str | None) -> None:
    """Get real time events from the server."""
    now = time.time()
    params = {
        "filters": build_filters(filters),
        "since": api_timestamp(since, now) if since else None,
        "until": api_timestamp(until, now) if until else None,
    }
    with app.client.call("GET", "/events", params) as response:
        pending = b""
        for chunk in response.iter_body():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                if raw.strip():
                    out(_render(json.loads(raw), format_))


def _render(event: dict[str, Any], format_: str | None) -> str:
    if not format_:
        return event_line(event)
    if format_ == "json":
        return go_json(event) + "\n"
    return render_template(format_, event) + "\n"


def _update_flags(f: Any) -> Any:
    for decorator in reversed(resourceflags.click_options(for_update=True)):
        f = decorator(f)
    return f


@click.command()
@_update_flags
@click.option("--restart", "restart", metavar="STRING",
              help="Restart policy to apply when a container exits")
@click.argument("containers", nargs=-1, required=True, metavar="CONTAINER [CONTAINER...]")
@pass_app
def update(app: App, restart: str | None, containers: tuple[str, ...], **params: Any) -> None:
    """Update configuration of one or more containers."""
    try:
        body: dict[str, Any] = resourceflags.ResourceFlags.from_params(params).fields()
    except OptionError as exc:
        raise CommandError(str(exc), 125) from None
    if restart is not None:
        body["RestartPolicy"] = restart_policy(restart)
    if not body:
        raise click.UsageError("you must provide one or more flags when using this command")
    client = app.client

    def one(name: str) -> None:
        client.call("POST", f"/containers/{quote_path(name)}/update", json=body).close()
        out(name + "\n")

    for_each(containers, one)
