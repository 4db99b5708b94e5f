"""`moor volume create|ls|inspect|rm|prune`: docker's volume commands, same flags and output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import click

from engine.cli.app import App, confirm, describe, error_line, for_each, out, pass_app
from engine.cli.client import APIError, ClientError, quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    human_size,
    render_listing,
)
from engine.cli.inspecting import print_inspected
from engine.cli.options import OptionError, build_filters, build_labels, key_value_map

CONTEXT = {"help_option_names": ["-h", "--help"]}

LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_QUIET = "{{.Name}}"
LS_HEADERS = {
    "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED",
    "Status": "STATUS",
}


def parse_opts(values: tuple[str, ...]) -> dict[str, str]:
    """`-o KEY=VALUE` flags; the value may itself contain `=` (`-o o=size=64m`)."""
    return key_value_map(values, "-o, --opt", "bad format for options, expected KEY=VALUE")


@attrs.frozen
class VolumeRow:
    """One `volume ls` line: the fields docker's volume formatter offers."""

    data: Mapping[str, Any]

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            raise TemplateError(f"can't evaluate field {name} in type volume")
        return getter()

    def as_dict(self) -> dict[str, Any]:
        return {name: self.field(name) for name in sorted(LS_HEADERS)}

    def _f_Name(self) -> str:
        return str(self.data.get("Name", ""))

    def _f_Driver(self) -> str:
        return str(self.data.get("Driver", ""))

    def _f_Scope(self) -> str:
        return str(self.data.get("Scope", ""))

    def _f_Mountpoint(self) -> str:
        return str(self.data.get("Mountpoint", ""))

    def _f_CreatedAt(self) -> str:
        return str(self.data.get("CreatedAt", ""))

    def _f_Labels(self) -> str:
        labels = self.data.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def _f_Links(self) -> str:
        return "N/A"

    def _f_Size(self) -> str:
        return "N/A"

    def _f_Status(self) -> str:
        return "N/A"


@click.command(name="create", context_settings=CONTEXT)
@click.option("-d", "--driver", default="local", show_default=True, metavar="STRING",
              help="Specify volume driver name")
@click.option("--label", "labels", multiple=True, metavar="LIST", help="Set metadata for a volume")
@click.option("-o", "--opt", "opts", multiple=True, metavar="MAP",
              help="Set driver specific options (local: uid, gid, mode, type, device, o)")
@click.option("--name", "name_flag", metavar="STRING", hidden=True, help="Specify volume name")
@click.argument("name", required=False, metavar="[VOLUME]")
@pass_app
def create(app: App, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
           name_flag: str | None, name: str | None) -> None:
    """Create a volume.

    Without a name, the volume gets a random one and counts as anonymous (`volume prune`
    removes it when no container uses it).
    """
    if name and name_flag and name != name_flag:
        raise CommandError("conflicting options: either specify --name or provide positional "
                           "arg, not both\nSee 'moor volume create --help'.")
    try:
        body = {"Name": name or name_flag or "", "Driver": driver,
                "DriverOpts": parse_opts(opts), "Labels": build_labels(labels, ())}
        volume = app.client.post_json("/volumes/create", json=body) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    out(f"{volume.get('Name', '')}\n")


@click.command(name="ls", context_settings=CONTEXT)
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"dangling=true\")")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@pass_app
def ls(app: App, filters: tuple[str, ...], fmt: str | None, quiet: bool) -> None:
    """List volumes."""
    try:
        found = app.client.get_json("/volumes", {"filters": build_filters(filters)}) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    rows = [VolumeRow(v) for v in sorted(found.get("Volumes") or [],
                                         key=lambda v: str(v.get("Name", "")))]
    for warning in found.get("Warnings") or []:
        error_line(str(warning))
    try:
        out(render_listing(LS_QUIET if quiet else fmt, rows, LS_TABLE, LS_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None


@click.command(name="inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", metavar="STRING",
              help="Format output using a Go template (e.g. '{{.Mountpoint}}') or 'json'")
@click.argument("names", nargs=-1, required=True, metavar="VOLUME [VOLUME...]")
@pass_app
def inspect(app: App, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(app.client.get_json(f"/volumes/{quote_path(name)}"))
        except APIError as exc:
            errors.append(describe(exc))
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    print_inspected(found, errors, fmt)


@click.command(name="rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True,
              help="Force the removal of one or more volumes (a missing one is not an error)")
@click.argument("names", nargs=-1, required=True, metavar="VOLUME [VOLUME...]")
@pass_app
def rm(app: App, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes. A volume in use by a container cannot be removed."""
    client = app.client

    def one(name: str) -> None:
        client.call("DELETE", f"/volumes/{quote_path(name)}", {"force": force or None}).close()
        out(f"{name}\n")

    for_each(names, one)


@click.command(name="prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused volumes, not just anonymous ones")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"label=<label>\")")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@pass_app
def prune(app: App, all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused volumes (anonymous ones only, unless -a)."""
    what = "all local volumes" if all_ else "anonymous local volumes"
    warning = f"WARNING! This will remove {what} not used by at least one container."
    if not force and not confirm(f"{warning}\nAre you sure you want to continue? [y/N] "):
        return
    try:
        query = build_filters([*filters, *(["all=true"] if all_ else [])])
        result = app.client.post_json("/volumes/prune", {"filters": query}) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    deleted = result.get("VolumesDeleted") or []
    if deleted:
        out("Deleted Volumes:\n" + "".join(f"{name}\n" for name in deleted) + "\n")
    out(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")


def volume_group() -> click.Group:
    """The `volume` command group, as `moor volume …` shows it."""
    group = click.Group(name="volume", help="Manage volumes", context_settings=CONTEXT)
    for alias, command in (("create", create), ("inspect", inspect), ("ls", ls), ("list", ls),
                           ("prune", prune), ("rm", rm), ("remove", rm)):
        group.add_command(command, name=alias)
    return group


__all__ = ["create", "inspect", "ls", "parse_opts", "prune", "rm", "volume_group"]
