"""System commands: version, info and df, laid out as docker lays them out."""

from __future__ import annotations

import platform
import sys
import time
from typing import Any

import attrs
import click

import engine
from engine.cli.app import App, describe, error_line, out, pass_app
from engine.cli.client import API_VERSION, ClientError
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    bytes_size,
    go_json,
    human_size,
    render_listing,
    render_template,
    tabwrite,
)
from engine.cli.images import IMAGES_HEADERS, ImageRow
from engine.cli.ps import PS_HEADERS, ContainerRow

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def go_arch(machine: str | None = None) -> str:
    """Architecture names as Go spells them (docker prints `linux/amd64`)."""
    machine = machine or platform.machine()
    return _GO_ARCH.get(machine, machine)


def client_version() -> dict[str, Any]:
    return {
        "Version": engine.__version__,
        "ApiVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform if sys.platform != "linux" else "linux",
        "Arch": go_arch(),
    }


def version_text(client: dict[str, Any], server: dict[str, Any] | None) -> str:
    """Docker's two-section `version` layout (values aligned by tabwriter at 20)."""
    lines = [
        "Client:",
        f" Version:\t{client['Version']}",
        f" API version:\t{client['ApiVersion']}",
        f" Python version:\t{client['PythonVersion']}",
        f" OS/Arch:\t{client['Os']}/{client['Arch']}",
    ]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name") or ""
        lines += ["", "Server:" + (f" {name}" if name else "")]
        components = server.get("Components") or [{
            "Name": "Engine", "Version": server.get("Version", ""),
            "Details": {k: server.get(k, "") for k in (
                "ApiVersion", "MinAPIVersion", "GoVersion", "GitCommit", "BuildTime",
                "Os", "Arch", "KernelVersion", "Experimental")},
        }]
        for component in components:
            details = component.get("Details") or {}
            lines.append(f" {component.get('Name', '')}:")
            lines.append(f"  Version:\t{component.get('Version', '')}")
            if component.get("Name") == "Engine":
                api = details.get("ApiVersion", server.get("ApiVersion", ""))
                minimum = details.get("MinAPIVersion", server.get("MinAPIVersion", ""))
                lines.append(f"  API version:\t{api} (minimum version {minimum})")
                for label, key in (("Go version", "GoVersion"), ("Git commit", "GitCommit"),
                                   ("Built", "BuildTime")):
                    if details.get(key):
                        lines.append(f"  {label}:\t{details[key]}")
                os_name = details.get("Os", server.get("Os", ""))
                arch = details.get("Arch", server.get("Arch", ""))
                lines.append(f"  OS/Arch:\t{os_name}/{arch}")
                experimental = details.get("Experimental", server.get("Experimental", False))
                lines.append(f"  Experimental:\t{_go_value(experimental)}")
            else:
                for key in sorted(details):
                    lines.append(f"  {key}:\t{_go_value(details[key])}")
    return tabwrite("\n".join(lines), minwidth=20, padding=1) + "\n"


def _go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@click.command()
@click.option("-f", "--format", "fmt", metavar="STRING",
              help="Format output using a Go template (e.g. '{{.Server.Version}}') or 'json'")
@pass_app
def version(app: App, fmt: str | None) -> None:
    """Show the moor and moord version information."""
    client_info = client_version()
    server: dict[str, Any] | None = None
    failure: str | None = None
    try:
        server = app.client.get_json("/version")
    except ClientError as exc:
        failure = describe(exc)
    if fmt:
        data = {"Client": client_info, "Server": server}
        out((go_json(data) if fmt == "json" else render_template(fmt, data)) + "\n")
    else:
        out(version_text(client_info, server))
    if failure:
        sys.stdout.flush()
        raise CommandError(failure)


def info_text(client: dict[str, Any], info: dict[str, Any]) -> str:
    """A readable subset of `docker info`, in its order and wording."""
    lines = [
        "Client:",
        f" Version:     {client['Version']}",
        f" API version: {client['ApiVersion']}",
        "",
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
    ]
    for pair in info.get("DriverStatus") or []:
        if isinstance(pair, list) and len(pair) == 2:
            lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [
        f" Logging Driver: {info.get('LoggingDriver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
    ]
    plugins = info.get("Plugins") or {}
    if plugins:
        lines.append(" Plugins:")
        for kind in ("Volume", "Network", "Log"):
            if plugins.get(kind):
                lines.append(f"  {kind}: {' '.join(plugins[kind])}")
    runtimes = info.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    if info.get("DefaultRuntime"):
        lines.append(f" Default Runtime: {info['DefaultRuntime']}")
    security = info.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for option in security:
            fields = dict(kv.partition("=")[::2] for kv in str(option).split(","))
            lines.append(f"  {fields.pop('name', option)}")
            for key, value in fields.items():
                lines.append(f"   {key.capitalize()}: {value}")
    lines += [
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(info.get('MemTotal') or 0)}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Moorage Root Dir: {info.get('DockerRootDir', '')}",
        f" Debug Mode: {_go_value(bool(info.get('Debug')))}",
        f" Experimental: {_go_value(bool(info.get('ExperimentalBuild')))}",
        f" Live Restore Enabled: {_go_value(bool(info.get('LiveRestoreEnabled')))}",
    ]
    labels = info.get("Labels") or []
    if labels:
        lines.append(" Labels:")
        lines.extend(f"  {label}" for label in labels)
    return "\n".join(lines) + "\n"


@click.command()
@click.option("-f", "--format", "fmt", metavar="STRING",
              help="Format output using a Go template (e.g. '{{.NCPU}}') or 'json'")
@pass_app
def info(app: App, fmt: str | None) -> None:
    """Display system-wide information."""
    try:
        data = app.client.get_json("/info") or {}
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    if fmt:
        out((go_json(data) if fmt == "json" else render_template(fmt, data)) + "\n")
        return
    out(info_text(client_version(), data))
    sys.stdout.flush()
    for warning in data.get("Warnings") or []:
        error_line(str(warning))


# --- system df ---------------------------------------------------------------------------

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
_DF_IMAGES_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                    "\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
_DF_CONTAINERS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}"
                        "\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
_DF_BUILD_CACHE_HEADER = "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED"
_ACTIVE_STATES = ("running", "paused", "restarting")


def _share(part: int, total: int) -> str:
    """docker's RECLAIMABLE cell: `1.2MB (40%)`, the percentage only of a non-zero total."""
    if total > 0:
        return f"{human_size(part)} ({part * 100 // total}%)"
    return human_size(part)


@attrs.frozen
class DfRow:
    """One line of `system df`: a kind of object, its count, use and reclaimable bytes."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: str

    def field(self, name: str) -> Any:
        values = {"Type": self.type, "TotalCount": str(self.total),
                  "Active": str(self.active), "Size": human_size(self.size),
                  "Reclaimable": self.reclaimable}
        if name not in values:
            raise TemplateError(f"can't evaluate field {name} in type *formatter.diskUsage")
        return values[name]

    def as_dict(self) -> dict[str, Any]:
        return {name: self.field(name) for name in sorted(DF_HEADERS)}


def df_rows(data: dict[str, Any]) -> list[DfRow]:
    """The summary as docker computes it from `GET /system/df` (the daemon sends lists)."""
    images = data.get("Images") or []
    layers = int(data.get("LayersSize") or 0)
    used = sum(i.get("Size", 0) - i.get("SharedSize", 0) for i in images
               if i.get("Containers") and i.get("Size", -1) != -1
               and i.get("SharedSize", -1) != -1)
    containers = data.get("Containers") or []
    rw = sum(int(c.get("SizeRw") or 0) for c in containers)
    idle_rw = sum(int(c.get("SizeRw") or 0) for c in containers
                  if c.get("State") not in _ACTIVE_STATES)
    volumes = data.get("Volumes") or []
    usage = [v.get("UsageData") or {"Size": -1, "RefCount": 0} for v in volumes]
    measured = [u for u in usage if u.get("Size", -1) != -1]
    volume_size = sum(u["Size"] for u in measured)
    cache = data.get("BuildCache") or []
    cache_size = sum(int(b.get("Size") or 0) for b in cache if not b.get("Shared"))
    cache_idle = sum(int(b.get("Size") or 0) for b in cache
                     if not (b.get("InUse") and not b.get("Shared")))
    return [
        DfRow("Images", len(images), sum(1 for i in images if (i.get("Containers") or 0) > 0),
              layers, _share(layers - used, layers)),
        DfRow("Containers", len(containers),
              sum(1 for c in containers if c.get("State") in _ACTIVE_STATES), rw,
              _share(idle_rw, rw)),
        DfRow("Local Volumes", len(volumes), sum(1 for u in usage if u.get("RefCount")),
              volume_size,
              _share(sum(u["Size"] for u in measured if not u.get("RefCount")), volume_size)),
        DfRow("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), cache_size,
              human_size(cache_idle)),
    ]


def _first_tag(image: dict[str, Any]) -> tuple[str, str]:
    """docker df -v shows an image under its first tag only: (repository, tag)."""
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    if not tags:
        return "<none>", "<none>"
    ref = tags[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "<none>")


def df_verbose_text(data: dict[str, Any]) -> str:
    """`system df -v`: one table per kind of object, docker's sections and columns."""
    now = time.time()
    image_rows = [ImageRow(i, *_first_tag(i), now=now) for i in data.get("Images") or []]
    # docker leaves the virtual size out of this table
    container_rows = [ContainerRow({**c, "SizeRootFs": 0}, now=now)
                      for c in data.get("Containers") or []]
    volume_lines = ["VOLUME NAME\tLINKS\tSIZE"]
    for v in data.get("Volumes") or []:
        usage = v.get("UsageData")
        links = str(usage.get("RefCount", 0)) if usage else "N/A"
        size = human_size(usage.get("Size", -1)) if usage else "N/A"
        volume_lines.append(f"{v.get('Name', '')}\t{links}\t{size}")
    cache = data.get("BuildCache") or []
    cache_size = sum(int(b.get("Size") or 0) for b in cache if not b.get("Shared"))
    return "".join([
        "Images space usage:\n\n",
        render_listing(None, image_rows, _DF_IMAGES_TABLE, IMAGES_HEADERS),
        "\nContainers space usage:\n\n",
        render_listing(None, container_rows, _DF_CONTAINERS_TABLE, PS_HEADERS),
        "\nLocal Volumes space usage:\n\n",
        tabwrite("\n".join(volume_lines)) + "\n",
        f"\nBuild cache usage: {human_size(cache_size)}\n\n",
        tabwrite(_DF_BUILD_CACHE_HEADER) + "\n",
    ])


@click.command()
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template")
@pass_app
def df(app: App, verbose: bool, fmt: str | None) -> None:
    """Show moorage disk usage."""
    if verbose and fmt not in (None, "", "table"):
        raise CommandError("moor: --format with --verbose is not supported; use one or the other")
    try:
        data = app.client.get_json("/system/df") or {}
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    if verbose:
        out(df_verbose_text(data))
        return
    try:
        out(render_listing(fmt, df_rows(data), DF_TABLE, DF_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None
