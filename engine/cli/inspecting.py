"""`inspect`: looking objects up, and printing what was found the way docker prints it."""

from __future__ import annotations

from typing import Any

import click

from engine.cli.app import App, describe, error_line, out, pass_app
from engine.cli.client import APIError, Client, ClientError, container_path, quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import TemplateError, expand_escapes, go_json, render_template


def print_inspected(found: list[Any], errors: list[str], fmt: str | None) -> None:
    """A JSON array (or each object through `--format`), then the errors; exit 1 if any."""
    if fmt and fmt != "json":
        try:
            template = expand_escapes(fmt)
            out("".join(render_template(template, obj) + "\n" for obj in found))
        except TemplateError as exc:
            raise CommandError(f"template parsing error: {exc}") from None
    else:
        out(go_json(found, indent=4, escape_html=False) + "\n")
    if errors:
        for message in errors:
            error_line(message)
        raise CommandError("", 1)


def inspect_one(client: Client, name: str, kind: str | None, size: bool) -> Any:
    """Containers first, then images, as `docker inspect` looks things up."""
    lookups: list[tuple[str, str, dict[str, Any]]] = []
    if kind in (None, "container"):
        lookups.append(("container", container_path(name, "/json"), {"size": size or None}))
    if kind in (None, "image"):
        lookups.append(("image", f"/images/{quote_path(name)}/json", {}))
    for _, path, params in lookups:
        try:
            return client.get_json(path, params)
        except APIError as exc:
            if exc.status != 404:
                raise
    what = {"container": "container", "image": "image"}.get(kind or "", "object")
    raise CommandError(f"Error: No such {what}: {name}")


def inspect_command(kind: str | None) -> click.Command:
    """`inspect` (any object, or `--type`), `container inspect`, `image inspect`."""
    what = {"container": "containers", "image": "images"}.get(kind or "", "containers or images")

    @click.command(name="inspect",
                   help=f"Return low-level information on {what}, as JSON.")
    @click.option("-f", "--format", "fmt", metavar="STRING",
                  help="Format output using a Go template (e.g. '{{.State.Status}}') or 'json'")
    @click.option("-s", "--size", is_flag=True,
                  help="Display total file sizes if the type is container")
    @click.argument("names", nargs=-1, required=True, metavar="NAME|ID [NAME|ID...]")
    @pass_app
    def command(app: App, fmt: str | None, size: bool, names: tuple[str, ...],
                kind: str | None = kind) -> None:
        inspect_objects(app.client, names, kind, fmt, size)

    if kind is None:
        command = click.option("--type", "kind", type=click.Choice(["container", "image"]),
                               help="Only look for objects of this type")(command)
    return command


def inspect_objects(client: Client, names: tuple[str, ...], kind: str | None,
                    fmt: str | None, size: bool) -> None:
    """Print the objects found as a JSON array (or through `--format`), then the misses."""

    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(inspect_one(client, name, kind, size))
        except CommandError as exc:
            errors.append(exc.message)
        except APIError as exc:
            errors.append(describe(exc))
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    print_inspected(found, errors, fmt)


inspect = inspect_command(None)
