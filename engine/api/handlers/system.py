"""`/_ping`, `/version`, `/info`: what clients ask before anything else."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import platform
import socket
from typing import TYPE_CHECKING, Any

import attrs
import trio

import engine as engine_pkg
from engine.api import API_VERSION, MIN_API_VERSION
from engine.api.http import JSONResponse, RawResponse, Request
from engine.api.router import Router
from engine.api.wire.containers import rfc3339
from engine.config import DaemonConfig
from engine.containers.model import Status
from engine.docker_plugins.registry import NETWORK

if TYPE_CHECKING:
    from engine.engine import Engine

router = Router()

_PING_HEADERS = (
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Builder-Version", "1"),
    ("Swarm", "inactive"),
)


@router.route("GET", "/_ping")
async def ping(req: Request, engine: Engine) -> RawResponse:
    """GET and HEAD (the router serves HEAD with GET handlers; the server drops the body)."""
    return RawResponse(b"OK", content_type="text/plain; charset=utf-8", headers=_PING_HEADERS)


@router.route("GET", "/version")
async def version(req: Request, engine: Engine) -> JSONResponse:
    host = engine.host
    runtime = host.runtimes[host.default_runtime]
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _go_arch(host.architecture),
        "KernelVersion": host.kernel_version,
        "Experimental": "false",
        "BuildTime": "",
    }
    body = {
        "Platform": {"Name": f"moorage {engine_pkg.__version__}"},
        "Components": [
            {"Name": "Engine", "Version": engine_pkg.__version__, "Details": details},
            {"Name": runtime.name, "Version": runtime.version,
             "Details": {"Path": runtime.path}},
            {"Name": "conmon", "Version": host.conmon_version,
             "Details": {"Path": host.conmon_path}},
        ],
        "Version": engine_pkg.__version__,
        **{key: value for key, value in details.items() if key != "Experimental"},
    }
    return JSONResponse(body)


def _go_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def registry_config(config: DaemonConfig) -> dict[str, Any]:
    """`docker info`'s registry part: insecure networks and names, mirrors of docker.io."""
    cidrs, names = ["127.0.0.0/8", "::1/128"], []
    for item in config.insecure_registries:
        try:
            cidrs.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            names.append(item)
    mirrors = [m if "://" in m else f"https://{m}" for m in config.registry_mirrors]
    index = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True,
                           "Official": True}}
    for name in names:
        index[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
    return {"AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": mirrors or None}


def _network_plugins(engine: Engine) -> list[str]:
    """The Docker network plugins activated so far (dockerd lists them beside its own)."""
    if engine.docker_plugins is None:
        return []
    return [p.name for p in engine.docker_plugins.active() if NETWORK in p.implements]


@router.route("GET", "/info")
async def info(req: Request, engine: Engine) -> JSONResponse:
    host = engine.host
    now = await trio.to_thread.run_sync(_read_now, str(engine.config.data_root))
    containers = engine.containers.all()
    running = sum(1 for c in containers if c.state.status is Status.RUNNING)
    paused = sum(1 for c in containers if c.state.status is Status.PAUSED)
    layout = host.cgroups
    runtimes: dict[str, Any] = {
        name: {"path": r.path} for name, r in host.runtimes.items() if r.usable
    }
    body: dict[str, Any] = {
        "ID": engine.id,
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(engine.images.list()),
        "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", now.fs_type],
                         ["Supports d_type", "true"]],
        "Plugins": {"Volume": sorted(engine.volumes.drivers),
                    "Network": ["host", "none", *_network_plugins(engine)],
                    "Authorization": list(engine.config.authorization_plugins) or None,
                    "Log": sorted(engine.containers.log_drivers)},
        "MemoryLimit": True,
        "SwapLimit": layout.version == 2 or host.swap_accounting,
        "KernelMemory": False,
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "OomKillDisable": layout.version == 1,
        "IPv4Forwarding": now.ip_forward,
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": engine.config.log_level == "debug",
        "NFd": now.open_fds,
        "NGoroutines": 0,
        "SystemTime": rfc3339(dt.datetime.now(dt.timezone.utc)),
        "LoggingDriver": engine.config.log_driver,
        "CgroupDriver": layout.driver,
        "CgroupVersion": str(layout.version),
        "NEventsListener": 0,
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": host.os_version,
        "OSType": "linux",
        "Architecture": host.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(engine.config),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": now.mem_total,
        "GenericResources": None,
        "DockerRootDir": str(engine.config.data_root),
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": engine_pkg.__version__,
        "Runtimes": runtimes,
        "DefaultRuntime": host.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": host.init_path,
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": host.runtimes[host.default_runtime].version},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=" + (host.seccomp_profile or "unconfined")]
        + (["name=cgroupns"] if layout.version == 2 else []),
        "CDISpecDirs": [],
        "Containerd": None,
        "Warnings": list(host.warnings),
    }
    return JSONResponse(body)


@attrs.frozen
class _Readings:
    """What `info` reads from /proc each time: small reads, but blocking, so in a thread."""

    fs_type: str
    ip_forward: bool
    open_fds: int
    mem_total: int


def _read_now(data_root: str) -> _Readings:
    return _Readings(_fs_type(data_root), _ip_forward(), _count_fds(), _mem_total())


def _fs_type(path: str) -> str:
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and path.startswith(fields[1]) and len(fields[1]) > len(best):
                    best, fstype = fields[1], fields[2]
    except OSError:
        pass
    return fstype


def _ip_forward() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _count_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
