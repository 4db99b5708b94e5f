"""What this host can do, probed once at start-up, and why not when it can't.

moord must say clearly what is wrong when a host can't run containers: a missing
conmon or runtime, a hybrid cgroup layout crun refuses, no overlayfs. `probe_host`
answers with a `HostProfile` (used by `info`, `version` and the runtime path) or
raises `HostNotReady` with a message that says how to fix it.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from pathlib import Path

import attrs

from engine.config import DaemonConfig
from engine.errors import HostNotReady
from engine.kernel import modules
from engine.runtime import cgroups
from engine.runtime.exits import boot_id

log = logging.getLogger(__name__)

INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit")


@attrs.frozen
class RuntimeInfo:
    name: str
    path: str
    version: str
    usable: bool
    problem: str = ""


@attrs.frozen
class HostProfile:
    cgroups: cgroups.CgroupLayout
    runtimes: dict[str, RuntimeInfo]
    default_runtime: str
    conmon_path: str
    conmon_version: str
    init_path: str
    seccomp_profile: str  # "" when unconfined
    kernel_version: str
    operating_system: str
    os_version: str
    architecture: str
    boot_id: str
    swap_accounting: bool = False
    warnings: tuple[str, ...] = ()

    def runtime_for(self, name: str) -> RuntimeInfo:
        """The runtime a container asked for (or the default), refusing unusable ones."""
        chosen = name or self.default_runtime
        info = self.runtimes.get(chosen)
        if info is None:
            from engine.errors import InvalidParameter

            raise InvalidParameter(f"unknown or invalid runtime name: {chosen}")
        if not info.usable:
            raise HostNotReady(f"runtime {chosen} cannot run containers on this host: {info.problem}")
        return info


def _version_of(path: str, *args: str) -> str:
    try:
        out = subprocess.run([path, *args], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    first = out.stdout.decode(errors="replace").strip().splitlines()
    return first[0] if first else ""


def _version_number(line: str) -> str:
    for word in line.split():
        if word[:1].isdigit():
            return word
    return line


def _os_release(key: str, default: str) -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith(key + "="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return default


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_overlay() -> None:
    """Load overlayfs's module when the kernel lacks it (after a reboot, nothing has yet)."""
    loaded, problem = modules.ensure_filesystem("overlay", "overlay")
    if problem is not None:
        raise HostNotReady(
            f"the kernel has no overlay filesystem and moord could not load it: {problem}. "
            "moord needs a kernel with overlayfs (CONFIG_OVERLAY_FS), built in or as the "
            "`overlay` module; scripts/prepare-host.sh loads it at every boot")
    if loaded:
        log.info("loaded the kernel's overlay module (modprobe overlay)")


def probe_host(config: DaemonConfig) -> HostProfile:
    """Look at the host (blocking). Raises HostNotReady with the fix when it can't run containers."""
    if not _is_root():
        raise HostNotReady("moord must run as root (it mounts filesystems and runs an OCI runtime)")
    layout = cgroups.detect()
    _ensure_overlay()
    conmon = config.conmon_path
    if not (os.path.isfile(conmon) and os.access(conmon, os.X_OK)):
        raise HostNotReady(f"conmon is not installed at {conmon} (apt-get install conmon)")
    runtimes: dict[str, RuntimeInfo] = {}
    for name in ("crun", "runc"):
        path = config.runtime_path(name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            runtimes[name] = RuntimeInfo(name, path, "", False,
                                         f"{path} is not installed (apt-get install {name})")
            continue
        version = _version_number(_version_of(path, "--version"))
        problem = layout.crun_blocker() if name == "crun" else None
        runtimes[name] = RuntimeInfo(name, path, version, problem is None, problem or "")
    warnings: list[str] = []
    wanted = config.runtime
    if wanted not in runtimes:
        raise HostNotReady(f"unknown runtime {wanted!r} in the configuration: crun or runc")
    default = wanted
    if not runtimes[wanted].usable:
        fallback = next((r for r in runtimes.values() if r.usable), None)
        if fallback is None:
            raise HostNotReady(
                "no OCI runtime can run containers on this host: "
                + "; ".join(f"{r.name}: {r.problem}" for r in runtimes.values())
            )
        message = (f"runtime {wanted} cannot run containers here ({runtimes[wanted].problem}); "
                   f"using {fallback.name} instead")
        log.warning("%s", message)
        warnings.append(message)
        default = fallback.name
    init_path = config.init_path or next(
        (p for p in INIT_CANDIDATES if os.access(p, os.X_OK)), "")
    if not init_path:
        warnings.append("no static init (tini-static or catatonit) found: --init will fail")
    seccomp = config.seccomp_profile
    if seccomp and seccomp != "unconfined" and not os.path.isfile(seccomp):
        raise HostNotReady(
            f"the seccomp profile {seccomp} is missing (apt-get install "
            "golang-github-containers-common, or set seccomp-profile = \"unconfined\")"
        )
    if layout.version == 1:
        warnings.append("this host uses cgroup v1; resource limits work, but cgroup v2 is better supported")
    return HostProfile(
        cgroups=layout,
        runtimes=runtimes,
        default_runtime=default,
        conmon_path=conmon,
        conmon_version=_version_number(_version_of(conmon, "--version")),
        init_path=init_path,
        seccomp_profile="" if seccomp == "unconfined" else seccomp,
        kernel_version=platform.release(),
        operating_system=_os_release("PRETTY_NAME", "Linux"),
        os_version=_os_release("VERSION_ID", ""),
        architecture=platform.machine(),
        boot_id=boot_id(),
        swap_accounting=os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        warnings=tuple(warnings),
    )
