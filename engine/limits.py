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
in its own order, some of them depending on the host's CPUs (`check_limits`). Each
`Limit` also declares its range twice, as dockerd has it: the Go integer type Docker's
JSON decoder reads it into (`GoInt`: 2^63 is not an int64, and a stored 2^63 would
break `inspect` in every Go client), and dockerd's own check of the value (`Bounds`).
`HOST_NUMBERS` does the same for HostConfig's numbers that are not limits.
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
class GoInt:
    """A Go integer type: the values Docker's JSON decoder accepts for a field."""

    name: str
    low: int
    high: int

    def admits(self, value: int) -> bool:
        return self.low <= value <= self.high


INT64 = GoInt("int64", -(2**63), 2**63 - 1)
INT = GoInt("int", -(2**63), 2**63 - 1)  # Go's int on the 64-bit hosts moord runs on
UINT16 = GoInt("uint16", 0, 2**16 - 1)
UINT64 = GoInt("uint64", 0, 2**64 - 1)
UINT = GoInt("uint", 0, 2**64 - 1)  # Go's uint on 64-bit hosts


class Applies(enum.Enum):
    """Which values dockerd checks against a field's bounds."""

    ALWAYS = "always"
    NONZERO = "nonzero"  # 0 means "not set"
    POSITIVE = "positive"  # 0 and below mean "not set" (or are ignored)


@attrs.frozen
class Bounds:
    """dockerd's own range for a value, and its message (`{value}` is filled in)."""

    low: int | None
    high: int | None
    message: str
    applies: Applies = Applies.NONZERO
    unset: int | None = None  # one more value that means "not set" (-1 for swappiness)

    def violated_by(self, value: int | None) -> str | None:
        """dockerd's message if `value` is out of range, else None."""
        if value is None or value == self.unset:
            return None
        if (self.applies is Applies.NONZERO and value == 0) or (
                self.applies is Applies.POSITIVE and value <= 0):
            return None
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            return self.message.format(value=value)
        return None


MIN_MEMORY = 6 * 1024 * 1024  # dockerd's floor, for overhead during start-up


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
    go_type: GoInt = INT64  # what Docker's JSON decoder takes (integer limits)
    bounds: Bounds | None = None  # dockerd's check of the value, if it has one
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

    cpu_shares: int = _limit(0, Limit(
        "CpuShares", "--cpu-shares", Unit.COUNT, "CPU shares (relative weight)", short="-c",
        bounds=Bounds(0, None, "invalid CPU shares ({value}): value must be a positive integer")))
    memory: int = _limit(0, Limit("Memory", "--memory", Unit.BYTES, "Memory limit", short="-m",
                                  bounds=Bounds(MIN_MEMORY, None,
                                                "Minimum memory limit allowed is 6MB")))
    nano_cpus: int = _limit(0, Limit("NanoCpus", "--cpus", Unit.CPUS, "Number of CPUs",
                                     update_aliases=("NanoCPUs",)))
    cpu_period: int = _limit(0, Limit(
        "CpuPeriod", "--cpu-period", Unit.COUNT, "Limit CPU CFS (Completely Fair Scheduler) period",
        bounds=Bounds(1000, 1_000_000, "CPU cfs period can not be less than 1ms (i.e. 1000) or "
                                       "larger than 1s (i.e. 1000000)")))
    cpu_quota: int = _limit(0, Limit(
        "CpuQuota", "--cpu-quota", Unit.COUNT, "Limit CPU CFS (Completely Fair Scheduler) quota",
        bounds=Bounds(1000, None, "CPU cfs quota can not be less than 1ms (i.e. 1000)",
                      Applies.POSITIVE)))
    cpuset_cpus: str = _limit("", Limit("CpusetCpus", "--cpuset-cpus", Unit.TEXT,
                                        "CPUs in which to allow execution (0-3, 0,1)"))
    cpuset_mems: str = _limit("", Limit("CpusetMems", "--cpuset-mems", Unit.TEXT,
                                        "MEMs in which to allow execution (0-3, 0,1)"))
    memory_reservation: int = _limit(0, Limit(
        "MemoryReservation", "--memory-reservation", Unit.BYTES, "Memory soft limit",
        bounds=Bounds(MIN_MEMORY, None, "Minimum memory reservation allowed is 6MB",
                      Applies.POSITIVE)))
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


@attrs.frozen
class Number:
    """A number in a create request that is not a limit: its Go type, dockerd's bounds."""

    go_type: GoInt = INT64
    bounds: Bounds | None = None


#: HostConfig's other numbers (those moord ignores are still checked, as dockerd checks
#: them: a value it would refuse is refused).
#: Windows' system-drive limits: dockerd on Linux refuses any value but 0
_NO_IO_MAXIMUM = Bounds(0, 0, "Invalid QoS settings: linux does not support Maximum IO "
                              "Bandwidth or Maximum IO IOps")

HOST_NUMBERS: dict[str, Number] = {
    "ShmSize": Number(INT64),  # below 0: engine/containers/create.py says so
    "OomScoreAdj": Number(INT, Bounds(-1000, 1000, "Invalid value {value}, range for oom score "
                                                   "adj is [-1000, 1000]", Applies.ALWAYS)),
    "BlkioWeight": Number(UINT16, Bounds(10, 1000, "Range of blkio weight is from 10 to 1000",
                                         Applies.POSITIVE)),
    "MemorySwappiness": Number(INT64, Bounds(0, 100, "Invalid value: {value}, valid memory "
                                                     "swappiness range is 0-100",
                                             Applies.ALWAYS, unset=-1)),
    "CpuCount": Number(INT64),
    "CpuPercent": Number(INT64),
    "CpuRealtimePeriod": Number(INT64),
    "CpuRealtimeRuntime": Number(INT64),
    "KernelMemory": Number(INT64),
    "KernelMemoryTCP": Number(INT64),
    "IOMaximumIOps": Number(UINT64, _NO_IO_MAXIMUM),
    "IOMaximumBandwidth": Number(UINT64, _NO_IO_MAXIMUM),
}

#: A container's stop timeout and a restart policy's retries are Go `int`s.
STOP_TIMEOUT = Number(INT)
MAX_RETRY_COUNT = Number(INT)
#: Hostnames longer than this are refused at create (dockerd's `maxHostnameLen`)
MAX_HOSTNAME_BYTES = 64

__all__ = [
    "HOST_NUMBERS", "INT", "INT64", "LIMITS", "LIMIT_BY_NAME", "MAX_HOSTNAME_BYTES",
    "MAX_RETRY_COUNT", "MIN_MEMORY", "STOP_TIMEOUT", "UINT", "UINT16", "UINT64", "Applies", "Bounds",
    "GoInt", "Limit", "Number", "Resources", "Unit",
]
