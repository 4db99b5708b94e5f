"""`moor commit`: a container's changes as a new image."""

from __future__ import annotations

import click

from engine.cli.app import App, describe, out, pass_app
from engine.cli.client import ClientError, ParamValue
from engine.cli.errors import CommandError


@click.command()
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p/-P", "--pause/--no-pause", default=True, help="Pause container during commit")
@click.argument("container")
@click.argument("repository", required=False, default="")
@pass_app
def commit(app: App, author: str, changes: tuple[str, ...], message: str, pause: bool,
           container: str, repository: str) -> None:
    """Create a new image from a container's changes."""
    query: dict[str, ParamValue] = {"container": container, "author": author, "comment": message,
                                "pause": "1" if pause else "0", "changes": list(changes)}
    if repository:
        query["repo"] = repository
    try:
        result = app.client.post_json("/commit", query, json={}) or {}
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    out(f"{result.get('Id', '')}\n")


__all__ = ["commit"]
