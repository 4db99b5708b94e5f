"""A container's resource limits, each declared once: its field, Docker's JSON key, moor's flag.

`Resources` is Docker's `Resources`: the memory, CPU and pids limits the container's
cgroup enforces. A container's `HostSpec` is one (its limits are flat in `HostConfig`
and in the stored records, as in Docker), `docker update` sends a `ResourceUpdate`
(one too), and the OCI spec's inputs carry one. Each field's metadata is a `Limit`:
the key in Docker's JSON (`HostConfig`, `UpdateConfig`), the moor flag that sets it and
how that flag's text reads, and whether `docker update` may change it. The JSON reader
and writer (engine/api/wire), moor's flags (engine/cli/resourceflags.py) and the update
rules walk `LIMITS`; adding a limit is a field here plus the code that applies it
(engine/runtime/spec.py `limit_resources`, and Docker's checks in
engine/containers/resources.py).

The record checks types only: Docker refuses bad values with its own 400 messages,
in its own order, some of them depending on the host's CPUs (`check_limits`).
No imports beyond attrs: moor reads this module too.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
from attrs import validators as v


class Unit(enum.Enum):
    """How moor's flag for a limit reads its text (as the docker CLI reads it)."""

    COUNT = "count"  # an integer: `--cpu-shares 512`
    BYTES = "bytes"  # a go-units size: `--memory 64m`
    SWAP = "swap"  # a size, or -1 for unlimited: `--memory-swap -1`
    CPUS = "cpus"  # a number of CPUs, kept as nano-CPUs: `--cpus 1.5`
    TEXT = "text"  # a string: `--cpuset-cpus 0-3`
    SWITCH = "switch"  # a flag without a value: `--oom-kill-disable`

    @property
    def metavar(self) -> str:
        """What `--help` shows for the flag's value."""
        return _METAVARS[self]


_METAVARS = {Unit.COUNT: "INT", Unit.BYTES: "BYTES", Unit.SWAP: "BYTES", Unit.CPUS: "DECIMAL",
             Unit.TEXT: "STRING", Unit.SWITCH: ""}


@attrs.frozen
class Limit:
    """What the engine's edges need to know about one limit field."""

    key: str  # Docker's JSON key, in HostConfig and UpdateConfig
    flag: str  # moor's (and docker's) flag
    unit: Unit
    help: str
    short: str = ""  # the one-letter flag, if any
    updatable: bool = True  # `docker update` may change it
    update_aliases: tuple[str, ...] = ()  # other keys clients send in UpdateConfig
    name: str = ""  # the field's name in `Resources` (filled in for `LIMITS`)
    default: int | str | bool | None = None  # the field's default: "not set" (filled in)

    @property
    def param(self) -> str:
        """click's parameter name for the flag."""
        return self.flag.lstrip("-").replace("-", "_")


def _limit(default: Any, limit: Limit) -> Any:
    kinds: dict[type, Any] = {bool: v.instance_of(bool), str: v.instance_of(str),
                              int: v.instance_of(int)}
    validator = v.optional(v.instance_of(int)) if default is None else kinds[type(default)]
    return attrs.field(default=default, validator=validator, metadata={"limit": limit})


@attrs.define
class Resources:
    """The limits; a field at its default (0, "", False, None) is not set.

    Fields are in the order of Docker's `Resources`, so `HostConfig` lists them as
    Docker does. Mutable because `HostSpec` (a mutable record) is one.
    """

    cpu_shares: int = _limit(0, Limit("CpuShares", "--cpu-shares", Unit.COUNT,
                                      "CPU shares (relative weight)", short="-c"))
    memory: int = _limit(0, Limit("Memory", "--memory", Unit.BYTES, "Memory limit", short="-m"))
    nano_cpus: int = _limit(0, Limit("NanoCpus", "--cpus", Unit.CPUS, "Number of CPUs",
                                     update_aliases=("NanoCPUs",)))
    cpu_period: int = _limit(0, Limit("CpuPeriod", "--cpu-period", Unit.COUNT,
                                      "Limit CPU CFS (Completely Fair Scheduler) period"))
    cpu_quota: int = _limit(0, Limit("CpuQuota", "--cpu-quota", Unit.COUNT,
                                     "Limit CPU CFS (Completely Fair Scheduler) quota"))
    cpuset_cpus: str = _limit("", Limit("CpusetCpus", "--cpuset-cpus", Unit.TEXT,
                                        "CPUs in which to allow execution (0-3, 0,1)"))
    cpuset_mems: str = _limit("", Limit("CpusetMems", "--cpuset-mems", Unit.TEXT,
                                        "MEMs in which to allow execution (0-3, 0,1)"))
    memory_reservation: int = _limit(0, Limit("MemoryReservation", "--memory-reservation",
                                              Unit.BYTES, "Memory soft limit"))
    # memory + swap; -1 unlimited
    memory_swap: int = _limit(0, Limit(
        "MemorySwap", "--memory-swap", Unit.SWAP,
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"))
    oom_kill_disable: bool = _limit(False, Limit("OomKillDisable", "--oom-kill-disable",
                                                 Unit.SWITCH, "Disable OOM Killer",
                                                 updatable=False))
    # 0 or negative: unlimited
    pids_limit: int | None = _limit(None, Limit(
        "PidsLimit", "--pids-limit", Unit.COUNT,
        "Tune container pids limit (set -1 for unlimited)"))

    def non_defaults(self) -> dict[str, Any]:
        """The limits that are set, by field name."""
        return {limit.name: getattr(self, limit.name) for limit in LIMITS
                if getattr(self, limit.name) != limit.default}

    def limits(self) -> Resources:
        """Just the limits of a record that is more than that (a `HostSpec`)."""
        return Resources(**{limit.name: getattr(self, limit.name) for limit in LIMITS})


LIMITS: tuple[Limit, ...] = tuple(
    attrs.evolve(f.metadata["limit"], name=f.name, default=f.default)
    for f in attrs.fields(Resources)
)
LIMIT_BY_NAME: dict[str, Limit] = {limit.name: limit for limit in LIMITS}

__all__ = ["LIMITS", "LIMIT_BY_NAME", "Limit", "Resources", "Unit"]
