"""A container's settings as an OCI runtime `config.json`, with Docker's defaults.

`build_spec(SpecInputs)` is pure: every input, including the few facts about the
host that change the result (`HostFacts`), comes in through the record, and the
result is the JSON-ready dict crun or runc reads. What goes in and why is written
up in docs/runtime-spec.md; in short, whatever Docker would put there:

- Docker's 14 default capabilities, adjusted by cap_add / cap_drop ("ALL" works);
  a privileged container gets every capability moord itself holds;
- Docker's 7 default mounts, then the caller's mounts sorted parents first, a
  caller's mount replacing a default at the same place;
- Docker's masked and read-only paths and device cgroup rules, none of them (and a
  writable /sys) for a privileged container;
- the containers-common seccomp profile resolved for the container's capabilities;
- `--init`: the host's static init bind-mounted at /sbin/docker-init as PID 1.

The parts live by concern: `security` (capabilities, masked paths, `--security-opt`),
`ocimounts` (the `Mount` record and Docker's default mounts), `devices` (device nodes
and the device cgroup); this module puts them together with the process, the
namespaces and the cgroup limits (`limit_resources`).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from engine.errors import InvalidParameter
from engine.limits import Resources
from engine.runtime import rlimits as rl
from engine.runtime import seccomp
from engine.runtime.devices import Device, DeviceRule, device_rules
from engine.runtime.ocimounts import (
    DEFAULT_SHM_SIZE,
    Mount,
    clean_destination,
    default_mounts,
    sort_mounts,
)
from engine.runtime.security import (
    CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    effective_capabilities,
)
from engine.runtime.users import ProcessUser

OCI_VERSION = "1.0.2"
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/docker-init"  # where Docker puts its init; images and docs expect it
DEFAULT_UMASK = 0o022

# Set by Docker in a network namespace the container owns: ping without CAP_NET_RAW,
# low ports without CAP_NET_BIND_SERVICE (both caps are in the default set anyway).
DEFAULT_NET_SYSCTLS: dict[str, str] = {
    "net.ipv4.ping_group_range": "0 2147483647",
    "net.ipv4.ip_unprivileged_port_start": "0",
}

# Mounts that stay writable with a read-only rootfs (Docker's list).
_WRITABLE_WITH_RO_ROOTFS = frozenset({"/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"})


def _running_kernel() -> tuple[int, int]:
    return seccomp.kernel_version(platform.release())


@attrs.frozen
class HostFacts:
    """The few things about the host that change a spec; probe once with `host_facts()`."""

    capabilities: tuple[str, ...] = CAPABILITIES  # moord's bounding set: "all" for privileged
    cgroup_v2: bool = False  # a pure cgroup v2 host: Docker's default cgroupns is private
    thermal_throttle_paths: tuple[str, ...] = ()  # masked like Docker (GHSA-jq35-85cj-fj4p)
    net_sysctls: frozenset[str] = frozenset(DEFAULT_NET_SYSCTLS)  # which the kernel has
    machine: str = attrs.field(factory=platform.machine)
    kernel: tuple[int, int] = attrs.field(factory=_running_kernel)


def probe_host_facts() -> HostFacts:
    """Read the host facts from /proc and /sys. Blocking (a few small reads)."""
    caps: tuple[str, ...] = CAPABILITIES
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                caps = tuple(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)
    thermal = sorted(
        (p for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
         if os.path.isdir(p)),
        key=lambda p: int(p.split("/")[5].removeprefix("cpu")),
    )
    sysctls = frozenset(
        name for name in DEFAULT_NET_SYSCTLS
        if os.path.exists("/proc/sys/" + name.replace(".", "/"))
    )
    return HostFacts(
        capabilities=caps,
        cgroup_v2=os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
        thermal_throttle_paths=tuple(thermal),
        net_sysctls=sysctls,
    )


@functools.cache
def host_facts() -> HostFacts:
    """`probe_host_facts()`, once per process."""
    return probe_host_facts()


def _default_rlimits() -> tuple[rl.Rlimit, ...]:
    return rl.rlimits_for_spec()


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, str):  # a lone string would become a tuple of characters
        raise TypeError(f"expected a sequence, not the string {value!r}")
    return tuple(value)


def _as_dict(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen
class SpecInputs:
    """Everything `build_spec` needs, already decided by the caller (nothing Docker-JSON-shaped).

    Namespace fields take "" (a new one; "private" and, for IPC, "shareable" mean the
    same), "host" (share the host's), or an absolute path to join (`/proc/PID/ns/net`,
    `/run/netns/NAME`). IPC also takes "none": a new namespace without /dev/shm.
    """

    # process
    args: tuple[str, ...] = attrs.field(converter=_as_tuple)
    rootfs: str = "rootfs"  # relative to the bundle, or absolute
    env: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    cwd: str = "/"
    user: ProcessUser = attrs.field(factory=ProcessUser)  # from users.resolve_user
    terminal: bool = False
    console_size: tuple[int, int] = (0, 0)  # (height, width); set only with a terminal
    hostname: str = ""
    domainname: str = ""
    readonly_rootfs: bool = False
    # privileges
    privileged: bool = False
    cap_add: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    cap_drop: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    no_new_privileges: bool = False
    writable_cgroups: bool | None = None  # None: writable only when privileged (Docker)
    # None: unconfined. Default: the containers-common profile, loaded once per process.
    seccomp_profile: seccomp.Profile | None = attrs.field(factory=seccomp.default_profile)
    rlimits: tuple[rl.Rlimit, ...] = attrs.field(factory=_default_rlimits, converter=_as_tuple)
    oom_score_adj: int = 0
    # namespaces
    pid_ns: str = ""
    ipc_ns: str = ""
    uts_ns: str = ""
    network_ns: str = ""
    network_ns_owned: bool = True  # the netns is this container's own: add Docker's net sysctls
    cgroup_ns: str = ""  # "": Docker's default (private on a cgroup v2 host), "private", "host"
    # filesystem
    mounts: tuple[Mount, ...] = attrs.field(default=(), converter=_as_tuple)
    shm_size: int = DEFAULT_SHM_SIZE
    init_binary: str = ""  # host path of a static init (tini-static); "" for no --init
    masked_paths: tuple[str, ...] | None = None  # None: Docker's defaults
    readonly_paths: tuple[str, ...] | None = None
    devices: tuple[Device, ...] = attrs.field(default=(), converter=_as_tuple)
    device_rules: tuple[DeviceRule, ...] = attrs.field(default=(), converter=_as_tuple)
    # resources
    cgroups_path: str = ""  # e.g. /moorage/<id>
    resources: Resources = attrs.field(factory=Resources)  # pids_limit <= 0: unlimited
    sysctls: dict[str, str] = attrs.field(factory=dict, converter=_as_dict)
    annotations: dict[str, str] = attrs.field(factory=dict, converter=_as_dict)
    host: HostFacts = attrs.field(factory=host_facts)


# --- mounts ---------------------------------------------------------------------------


def _without(options: Iterable[str], drop: str) -> tuple[str, ...]:
    return tuple(o for o in options if o != drop)


def _init_applies(inputs: SpecInputs) -> bool:
    return bool(inputs.init_binary) and inputs.pid_ns in ("", "private")


def _mounts(inputs: SpecInputs) -> list[Mount]:
    extra = [attrs.evolve(m, destination=clean_destination(m.destination)) for m in inputs.mounts]
    if _init_applies(inputs):
        extra.append(Mount(INIT_PATH, "bind", inputs.init_binary, ("bind", "ro")))
    taken = {m.destination for m in extra}
    writable_cgroups = (inputs.privileged if inputs.writable_cgroups is None
                        else inputs.writable_cgroups)
    result: list[Mount] = []
    for m in default_mounts(inputs.shm_size):
        if m.destination in taken:
            continue
        if "/dev" in taken and m.destination.startswith("/dev/"):
            continue
        if m.destination == "/dev/shm" and inputs.ipc_ns == "none":
            continue
        options = m.options
        if inputs.readonly_rootfs and m.destination not in _WRITABLE_WITH_RO_ROOTFS \
                and "ro" not in options:
            options += ("ro",)
        if inputs.privileged and m.destination == "/sys":
            options = _without(options, "ro")
        if writable_cgroups and m.type == "cgroup":
            options = _without(options, "ro")
        result.append(attrs.evolve(m, options=options))
    return result + sort_mounts(extra)


def _rootfs_propagation(mounts: Iterable[Mount]) -> str:
    """Docker's rule: a shared bind needs a shared rootfs, a slave bind an rslave one."""
    options = {o for m in mounts if m.type == "bind" for o in m.options}
    if options & {"shared", "rshared"}:
        return "shared"
    if options & {"slave", "rslave"}:
        return "rslave"
    return ""


# --- the rest of the spec ---------------------------------------------------------------


def _environment(inputs: SpecInputs) -> list[str]:
    """Docker's order: PATH, HOSTNAME, TERM, then the container's env replacing or adding.

    An entry without "=" removes that variable. HOME comes from passwd unless set.
    """
    merged: dict[str, str | None] = {"PATH": DEFAULT_PATH_ENV}
    if inputs.hostname:
        merged["HOSTNAME"] = inputs.hostname
    if inputs.terminal:
        merged["TERM"] = "xterm"
    for entry in inputs.env:
        key, sep, value = entry.partition("=")
        if sep:
            merged[key] = value
        else:
            merged.pop(key, None)
    if "HOME" not in merged:
        merged["HOME"] = inputs.user.home or "/"
    return [f"{k}={v}" for k, v in merged.items() if v is not None]


def _namespace(kind: str, mode: str, allowed: Sequence[str] = ("", "private")
               ) -> dict[str, str] | None:
    if mode == "host":
        return None
    if mode in allowed:
        return {"type": kind}
    if mode.startswith("/"):
        return {"type": kind, "path": mode}
    raise InvalidParameter(f"invalid {kind} namespace mode: {mode}")


def _namespaces(inputs: SpecInputs) -> list[dict[str, str]]:
    cgroup_mode = inputs.cgroup_ns
    if cgroup_mode == "":
        cgroup_mode = "private" if inputs.host.cgroup_v2 else "host"
    if cgroup_mode not in ("private", "host"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {inputs.cgroup_ns}")
    candidates = [
        _namespace("pid", inputs.pid_ns),
        _namespace("network", inputs.network_ns),
        _namespace("ipc", inputs.ipc_ns, ("", "private", "shareable", "none")),
        _namespace("uts", inputs.uts_ns),
        {"type": "mount"},
        _namespace("cgroup", cgroup_mode),
    ]
    return [ns for ns in candidates if ns is not None]


def _owns_netns(inputs: SpecInputs) -> bool:
    return inputs.network_ns != "host" and (inputs.network_ns in ("", "private")
                                            or inputs.network_ns_owned)


def _resources(inputs: SpecInputs) -> dict[str, Any]:
    return {"devices": device_rules(inputs.privileged, inputs.devices, inputs.device_rules),
            **limit_resources(inputs.resources)}


def limit_resources(limits: Resources) -> dict[str, Any]:
    """OCI `linux.resources` for memory, CPU and pids (no devices): the spec's, and what
    `docker update` hands to the runtime's `update --resources`."""
    res: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if limits.memory:
        memory["limit"] = limits.memory
    if limits.memory_reservation:
        memory["reservation"] = limits.memory_reservation
    if limits.memory_swap > 0 or limits.memory_swap == -1:
        memory["swap"] = limits.memory_swap
    if limits.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if limits.cpu_shares:
        cpu["shares"] = limits.cpu_shares
    if limits.nano_cpus:
        if limits.cpu_period:
            raise InvalidParameter(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set")
        if limits.cpu_quota:
            raise InvalidParameter(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
        cpu["period"] = 100_000
        cpu["quota"] = limits.nano_cpus * 100_000 // 1_000_000_000
    else:
        if limits.cpu_quota:
            cpu["quota"] = limits.cpu_quota
        if limits.cpu_period:
            cpu["period"] = limits.cpu_period
    if limits.cpuset_cpus:
        cpu["cpus"] = limits.cpuset_cpus
    if limits.cpuset_mems:
        cpu["mems"] = limits.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if limits.pids_limit is not None:
        res["pids"] = {"limit": limits.pids_limit if limits.pids_limit > 0 else -1}
    return res


def _process(inputs: SpecInputs, caps: list[str]) -> dict[str, Any]:
    if not inputs.args or not inputs.args[0]:
        raise InvalidParameter("No command specified")
    if not inputs.cwd.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{inputs.cwd}' is invalid, it needs to be an absolute path")
    args = list(inputs.args)
    if _init_applies(inputs):
        args = [INIT_PATH, "--", *args]
    user: dict[str, Any] = {"uid": inputs.user.uid, "gid": inputs.user.gid,
                            "umask": DEFAULT_UMASK}
    if inputs.user.additional_gids:
        user["additionalGids"] = list(inputs.user.additional_gids)
    process: dict[str, Any] = {"terminal": inputs.terminal}
    height, width = inputs.console_size
    if inputs.terminal and height > 0 and width > 0:
        process["consoleSize"] = {"height": height, "width": width}
    process.update({
        "user": user,
        "args": args,
        "env": _environment(inputs),
        "cwd": inputs.cwd,
        "capabilities": {"bounding": list(caps), "effective": list(caps),
                         "permitted": list(caps), "inheritable": [], "ambient": []},
        "rlimits": [r.to_oci() for r in inputs.rlimits],
        "noNewPrivileges": inputs.no_new_privileges,
        "oomScoreAdj": inputs.oom_score_adj,
    })
    return process


def build_spec(inputs: SpecInputs) -> dict[str, Any]:
    """The OCI runtime config for `inputs`. Pure; raises InvalidParameter on bad settings."""
    host = inputs.host
    caps = effective_capabilities(inputs.privileged, inputs.cap_add, inputs.cap_drop,
                                  host.capabilities)
    mounts = _mounts(inputs)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "root": {"path": inputs.rootfs, "readonly": inputs.readonly_rootfs},
        "process": _process(inputs, caps),
    }
    uts_private = inputs.uts_ns != "host"
    if uts_private and inputs.hostname:
        spec["hostname"] = inputs.hostname
    if uts_private and inputs.domainname:
        spec["domainname"] = inputs.domainname
    spec["mounts"] = [m.to_oci() for m in mounts]

    linux: dict[str, Any] = {"namespaces": _namespaces(inputs)}
    if inputs.devices:
        linux["devices"] = [d.to_oci() for d in inputs.devices]
    linux["resources"] = _resources(inputs)
    if inputs.cgroups_path:
        linux["cgroupsPath"] = inputs.cgroups_path
    if not inputs.privileged:
        masked = (inputs.masked_paths if inputs.masked_paths is not None
                  else DEFAULT_MASKED_PATHS + host.thermal_throttle_paths)
        readonly = (inputs.readonly_paths if inputs.readonly_paths is not None
                    else DEFAULT_READONLY_PATHS)
        linux["maskedPaths"] = list(masked)
        linux["readonlyPaths"] = list(readonly)
    sysctl: dict[str, str] = {}
    if _owns_netns(inputs):
        sysctl.update({k: v for k, v in DEFAULT_NET_SYSCTLS.items() if k in host.net_sysctls})
    sysctl.update(inputs.sysctls)
    if sysctl:
        linux["sysctl"] = sysctl
    if not inputs.privileged and inputs.seccomp_profile is not None:
        resolved = seccomp.resolve(inputs.seccomp_profile, caps, host.machine, host.kernel)
        if resolved is not None:
            linux["seccomp"] = resolved
    propagation = _rootfs_propagation(mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation
    spec["linux"] = linux
    if inputs.annotations:
        spec["annotations"] = dict(inputs.annotations)
    return spec
