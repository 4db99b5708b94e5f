"""`--ipc`, `--pid`, `--uts` and `--cgroupns`: which namespaces a container gets, as
dockerd gives them.

- create: each mode is checked for its form (dockerd's 400s: `invalid IPC mode: x`, …);
  a `container:<x>` mode may name a container that comes later;
- start: `host` shares the host's namespace; `container:<x>` joins the namespace of that
  running container (its `/proc/<pid>/ns/<kind>`); an IPC donor must have been created
  `--ipc shareable` (or `host`), and its /dev/shm is the joiner's too. `--uts host` gives
  the host's hostname; `--ipc host` the host's /dev/shm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from engine.containers.model import Container, HostSpec
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.runtime.ocimounts import Mount

if TYPE_CHECKING:
    from engine.containers.manager import ContainerManager

PREFIX = "container:"
IPC_OWN = ("", "private", "shareable", "none")


def _joins(mode: str) -> str:
    """The container a `container:<x>` mode names, or ""."""
    return mode.removeprefix(PREFIX) if mode.startswith(PREFIX) else ""


def _container_form(mode: str) -> bool:
    return mode.startswith(PREFIX) and bool(_joins(mode))


def check_modes(host: HostSpec) -> None:
    """The modes' forms, refused at create with dockerd's words."""
    if not (host.ipc_mode in (*IPC_OWN, "host") or _container_form(host.ipc_mode)):
        raise InvalidParameter(f"invalid IPC mode: {host.ipc_mode}")
    if not (host.pid_mode in ("", "host") or _container_form(host.pid_mode)):
        raise InvalidParameter(f"invalid PID mode: {host.pid_mode}")
    if host.uts_mode not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {host.uts_mode}")
    if host.cgroupns_mode not in ("", "private", "host"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {host.cgroupns_mode}")


@attrs.frozen
class Namespaces:
    """What the runtime spec takes: "" (its own), "host", or a namespace file to join."""

    ipc: str = ""
    pid: str = ""
    uts: str = ""
    cgroup: str = ""
    shm_mounts: tuple[Mount, ...] = ()  # /dev/shm when it is another's


def _donor(m: ContainerManager, ref: str, kind: str) -> Container:
    try:
        donor = m.table.lookup(ref)
    except NotFound as exc:
        raise NotFound(f"cannot join {kind} of a non running container: {ref}: "
                       f"{exc.message}") from None
    if not donor.state.is_live:
        raise Conflict(f"cannot join {kind} of a non running container: container {ref} is "
                       f"{donor.state.status.value}")
    return donor


def at_start(m: ContainerManager, c: Container) -> Namespaces:
    """The namespaces `c` starts with; dockerd's refusals for a donor that can't give one."""
    h = c.host
    ipc = h.ipc_mode if h.ipc_mode in ("host", "none") else ""
    shm: tuple[Mount, ...] = ()
    if h.ipc_mode == "host":
        shm = (Mount.bind("/dev/shm", "/dev/shm"),)
    elif ref := _joins(h.ipc_mode):
        donor = _donor(m, ref, "IPC")
        if donor.host.ipc_mode == "host":
            ipc, shm = "host", (Mount.bind("/dev/shm", "/dev/shm"),)
        elif donor.host.ipc_mode != "shareable":
            raise Conflict(f"can't join IPC of container {ref}: non-shareable IPC (hint: use "
                           "IpcMode:shareable for the donor container)")
        else:
            ipc = f"/proc/{donor.state.pid}/ns/ipc"
            shm = (Mount.bind(str(m.paths(donor).shm), "/dev/shm"),)
    pid = "host" if h.pid_mode == "host" else ""
    if ref := _joins(h.pid_mode):
        donor = _donor(m, ref, "PID")
        pid = "host" if donor.host.pid_mode == "host" else f"/proc/{donor.state.pid}/ns/pid"
    uts = "host" if h.uts_mode == "host" or h.network_mode == "host" else ""
    return Namespaces(ipc=ipc, pid=pid, uts=uts, cgroup=h.cgroupns_mode, shm_mounts=shm)


__all__ = ["Namespaces", "at_start", "check_modes"]
