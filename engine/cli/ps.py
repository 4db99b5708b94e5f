"""`ps`: listing containers, with docker's columns, templates and PORTS notation."""

from __future__ import annotations

import time
from typing import Any

import attrs
import click

from engine.cli.app import App, describe, out, pass_app
from engine.cli.client import ClientError
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    ellipsis,
    go_quote,
    go_time,
    human_size,
    render_listing,
    since,
    truncate_id,
)
from engine.cli.options import OptionError, build_filters

PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
            "\t{{.Ports}}\t{{.Names}}")
PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
    "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
    "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
}


def format_ports(ports: list[dict[str, Any]]) -> str:
    """docker's PORTS column: exposed ports grouped into ranges, then host mappings.

    `80/tcp, 8000-8002/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`.
    """
    def key(p: dict[str, Any]) -> tuple[int, str, int, str]:
        return (p.get("PrivatePort") or 0, p.get("IP") or "", p.get("PublicPort") or 0,
                p.get("Type") or "")

    groups: dict[str, list[int]] = {}  # "[ip/]type" -> [first, last], in first-seen order
    closed: list[str] = []
    mappings: list[str] = []

    def show(group_key: str, first: int, last: int) -> str:
        ip, _, kind = group_key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return f"{ip}:{span}->{span}/{kind}" if ip else f"{span}/{kind}"

    for p in sorted(ports, key=key):
        private = p.get("PrivatePort") or 0
        kind = p.get("Type") or "tcp"
        group_key = kind
        ip = p.get("IP") or ""
        if ip:
            public = p.get("PublicPort") or 0
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{private}/{kind}")
                continue
            group_key = f"{ip}/{kind}"
        span = groups.get(group_key)
        if span is None:
            groups[group_key] = [private, private]
        elif private == span[1] + 1:
            span[1] = private
        else:
            closed.append(show(group_key, span[0], span[1]))
            groups[group_key] = [private, private]
    result = closed + [show(k, first, last) for k, (first, last) in groups.items()]
    return ", ".join(result + mappings)


@attrs.define
class ContainerRow:
    """One `ps` line: the fields docker's templates know, computed on demand."""

    data: dict[str, Any]
    trunc: bool = True
    now: float = attrs.field(factory=time.time)

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            raise TemplateError(f"can't evaluate field {name} in type container")
        return getter()

    def method(self, name: str, *args: Any) -> Any:
        if name == "Label" and len(args) == 1:
            return (self.data.get("Labels") or {}).get(args[0], "")
        raise TemplateError(f"can't call method {name}")

    def as_dict(self) -> dict[str, Any]:
        fields = {name: self.field(name) for name in PS_HEADERS}
        fields["Platform"] = None  # docker 28 lists it; the API gives containers none
        return dict(sorted(fields.items()))

    def _f_ID(self) -> str:
        return truncate_id(self.data.get("Id", ""), full=not self.trunc)

    def _f_Image(self) -> str:
        image = str(self.data.get("Image") or "")
        if not image:
            return "<no image>"
        if self.trunc:
            image_id = str(self.data.get("ImageID") or "")
            if image_id and truncate_id(image_id) == truncate_id(image):
                return truncate_id(image)
            return image.split("@", 1)[0]
        return image

    def _f_Command(self) -> str:
        command = str(self.data.get("Command") or "")
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def _f_CreatedAt(self) -> str:
        return go_time(float(self.data.get("Created") or 0))

    def _f_RunningFor(self) -> str:
        return since(float(self.data.get("Created") or 0), self.now)

    def _f_Ports(self) -> str:
        return format_ports(self.data.get("Ports") or [])

    def _f_State(self) -> str:
        return str(self.data.get("State") or "")

    def _f_Status(self) -> str:
        return str(self.data.get("Status") or "")

    def _f_Size(self) -> str:
        rw = human_size(self.data.get("SizeRw") or 0, 3)
        rootfs = self.data.get("SizeRootFs") or 0
        return f"{rw} (virtual {human_size(rootfs, 3)})" if rootfs else rw

    def _f_Names(self) -> str:
        names = []
        for name in self.data.get("Names") or []:
            bare = name.lstrip("/")
            if self.trunc and "/" in bare:
                continue  # a legacy link alias, not the container's own name
            names.append(bare)
        return ",".join(names)

    def _f_Labels(self) -> str:
        labels = self.data.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def _f_Mounts(self) -> str:
        names = []
        for m in self.data.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc and len(name) > 15 else name)
        return ",".join(names)

    def _f_Networks(self) -> str:
        networks = ((self.data.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(networks))

    def _f_LocalVolumes(self) -> str:
        mounts = self.data.get("Mounts") or []
        return str(sum(1 for m in mounts if m.get("Driver") == "local"))


@click.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show all containers (default shows just running)")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter output based on conditions provided (key=value)")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template "
                   "such as '{{.ID}} {{.Names}}'")
@click.option("-n", "--last", type=int, default=-1, metavar="INT",
              help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True,
              help="Show the latest created container (includes all states)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@pass_app
def ps(app: App, all_: bool, filters: tuple[str, ...], fmt: str | None, last: int,
       latest: bool, no_trunc: bool, quiet: bool, size: bool) -> None:
    """List containers."""
    limit = 1 if latest else (last if last > 0 else None)
    try:
        params = {"all": True if (all_ or limit) else None, "limit": limit,
                  "size": True if size or (fmt and "Size" in fmt) else None,
                  "filters": build_filters(filters)}
        containers = app.client.get_json("/containers/json", params) or []
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    rows = [ContainerRow(c, trunc=not no_trunc) for c in containers]
    if quiet:
        out("".join(row.field("ID") + "\n" for row in rows))
        return
    table = PS_TABLE + ("\t{{.Size}}" if size else "")
    try:
        out(render_listing(fmt, rows, table, PS_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None
