"""Resource limits (`--ulimit`) for the container's process, and the defaults.

Docker names (`nofile`, `nproc`, ...) map to OCI `RLIMIT_*` types. The runtime applies
them with setrlimit(2) from inside moord's own limits: a hard limit above moord's
hard limit needs CAP_SYS_RESOURCE, and without it crun fails the whole start with
`setrlimit RLIMIT_NOFILE: Operation not permitted`. So:

- explicit `--ulimit` values are checked by `validate_ulimits` against what the host
  allows, with an error that says so (the caller decides whether to refuse or clamp);
- the defaults, and anything handed to the spec, are clamped by `rlimits_for_spec`.

Default: RLIMIT_NOFILE 1048576:1048576, clamped to what moord may grant — Podman's
choice, and what Docker gave for years through `LimitNOFILE=1048576` in its unit.
Every other limit is inherited from moord, as Docker does. On a host where moord's
hard NOFILE is 20000 and it lacks CAP_SYS_RESOURCE, containers get 20000:20000.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterable, Mapping
from typing import Protocol

import attrs

from engine.errors import InvalidParameter

RLIM_INFINITY = 2**64 - 1  # OCI rlimits are uint64; Docker's -1 means this
CAP_SYS_RESOURCE = 24

# Docker's names (go-units `ulimitNameMapping`); "as" is left out there too.
ULIMIT_TYPES: dict[str, str] = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}

DEFAULT_NOFILE = 1048576


class UlimitLike(Protocol):
    """Anything with Docker's ulimit shape (`engine.containers.model.Ulimit`)."""

    @property
    def name(self) -> str: ...
    @property
    def soft(self) -> int: ...
    @property
    def hard(self) -> int: ...


@attrs.frozen
class Rlimit:
    """One OCI `process.rlimits` entry; values are uint64, RLIM_INFINITY for unlimited."""

    type: str
    soft: int
    hard: int

    def to_oci(self) -> dict[str, object]:
        return {"type": self.type, "soft": self.soft, "hard": self.hard}

    @property
    def docker_name(self) -> str:
        return self.type.removeprefix("RLIMIT_").lower()


@attrs.frozen
class HostLimits:
    """What moord can hand on: its own hard limits, and whether it may raise them."""

    hard: Mapping[str, int]  # RLIMIT_* -> moord's hard limit (RLIM_INFINITY if unlimited)
    can_raise: bool  # the runtime moord starts will have CAP_SYS_RESOURCE
    nr_open: int = 1048576  # the kernel's ceiling for RLIMIT_NOFILE (fs.nr_open)

    def ceiling(self, rtype: str) -> int:
        """The highest hard limit a container may get for `rtype`."""
        if self.can_raise:
            return self.nr_open if rtype == "RLIMIT_NOFILE" else RLIM_INFINITY
        return self.hard.get(rtype, RLIM_INFINITY)


def _to_uint64(value: int) -> int:
    return RLIM_INFINITY if value < 0 else value


def _show(value: int) -> str:
    return "unlimited" if value == RLIM_INFINITY else str(value)


def host_limits() -> HostLimits:
    """Probe moord's own limits (cheap syscalls and one /proc read)."""
    hard: dict[str, int] = {}
    for rtype in ULIMIT_TYPES.values():
        number = getattr(resource, rtype, None)
        if number is None:
            continue
        hard[rtype] = _to_uint64(resource.getrlimit(number)[1])
    return HostLimits(hard=hard, can_raise=_has_cap_sys_resource(), nr_open=_nr_open())


def _has_cap_sys_resource() -> bool:
    """Whether the runtime moord starts (as root) will hold CAP_SYS_RESOURCE: its bounding set."""
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def _nr_open() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/sys/fs/nr_open") as f:
        return int(f.read().strip())
    return 1048576


def parse_ulimits(ulimits: Iterable[UlimitLike]) -> tuple[Rlimit, ...]:
    """Docker ulimits as OCI rlimits; unknown names and soft > hard are errors.

    A later entry for the same name replaces an earlier one. -1 means unlimited.
    """
    by_type: dict[str, Rlimit] = {}
    for u in ulimits:
        rtype = ULIMIT_TYPES.get(u.name.lower())
        if rtype is None:
            raise InvalidParameter(f"invalid ulimit type: {u.name}")
        if u.soft < -1 or u.hard < -1:
            raise InvalidParameter(f"invalid ulimit value for {u.name}: {u.soft}:{u.hard}")
        soft, hard = _to_uint64(u.soft), _to_uint64(u.hard)
        if soft > hard:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}")
        by_type[rtype] = Rlimit(rtype, soft, hard)
    return tuple(by_type.values())


def validate_ulimits(ulimits: Iterable[UlimitLike], limits: HostLimits | None = None) -> None:
    """Refuse explicit ulimits the runtime could not apply on this host, saying why."""
    limits = limits if limits is not None else host_limits()
    for r in parse_ulimits(ulimits):
        ceiling = limits.ceiling(r.type)
        if r.hard > ceiling:
            why = ("the kernel's fs.nr_open" if limits.can_raise
                   else "moord's own hard limit, and moord lacks CAP_SYS_RESOURCE to raise it")
            raise InvalidParameter(
                f"ulimit {r.docker_name}={_show(r.soft)}:{_show(r.hard)} exceeds what this host "
                f"allows: the hard limit can be at most {_show(ceiling)} ({why})")


def default_rlimits() -> tuple[Rlimit, ...]:
    """The limits every container gets unless it sets its own (before clamping)."""
    return (Rlimit("RLIMIT_NOFILE", DEFAULT_NOFILE, DEFAULT_NOFILE),)


def clamp(rlimits: Iterable[Rlimit], limits: HostLimits) -> tuple[Rlimit, ...]:
    """Lower each hard (and then soft) limit to what moord may grant."""
    out = []
    for r in rlimits:
        hard = min(r.hard, limits.ceiling(r.type))
        out.append(Rlimit(r.type, min(r.soft, hard), hard))
    return tuple(out)


def rlimits_for_spec(
    ulimits: Iterable[UlimitLike] = (), limits: HostLimits | None = None
) -> tuple[Rlimit, ...]:
    """The `process.rlimits` list: defaults overridden by `ulimits`, clamped to the host.

    Explicit values past the host's ceiling are clamped here too; call
    `validate_ulimits` first to refuse them with a clear error instead.
    """
    limits = limits if limits is not None else host_limits()
    merged = {r.type: r for r in default_rlimits()}
    for r in parse_ulimits(ulimits):
        merged[r.type] = r
    return clamp(merged.values(), limits)
