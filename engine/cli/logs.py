"""`logs`: a container's output, as stored by its log driver."""

from __future__ import annotations

import time

import click

from engine.cli.app import App, describe, pass_app
from engine.cli.attach import Outputs, pump
from engine.cli.client import ClientError, container_path
from engine.cli.errors import CommandError
from engine.cli.options import OptionError, api_timestamp


@click.command()
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", metavar="STRING",
              help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
                   '(e.g. "42m" for 42 minutes)')
@click.option("-n", "--tail", default="all", metavar="STRING",
              help='Number of lines to show from the end of the logs (default "all")')
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--until", metavar="STRING",
              help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
                   '(e.g. "42m" for 42 minutes)')
@click.argument("container")
@pass_app
def logs(app: App, details: bool, follow: bool, since: str | None, tail: str,
         timestamps: bool, until: str | None, container: str) -> None:
    """Fetch the logs of a container."""
    client = app.client
    try:
        now = time.time()
        params = {
            "stdout": 1, "stderr": 1,
            "since": api_timestamp(since, now) if since else None,
            "until": api_timestamp(until, now) if until else None,
            "timestamps": timestamps or None, "follow": follow or None,
            "tail": tail, "details": details or None,
        }
        info = client.get_json(container_path(container, "/json"))
        tty = bool((info.get("Config") or {}).get("Tty"))
        response = client.call("GET", container_path(container, "/logs"), params)
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    with response:
        try:
            failure = pump(response.iter_body(), tty, Outputs())
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    if failure:
        raise CommandError(failure)
