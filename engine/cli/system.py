"""System commands: version and info, laid out as docker lays them out."""

from __future__ import annotations

import platform
import sys
from typing import Any

import click

import engine
from engine.cli.app import App, describe, error_line, out, pass_app
from engine.cli.client import API_VERSION, ClientError
from engine.cli.errors import CommandError
from engine.cli.formatting import bytes_size, go_json, render_template, tabwrite

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
