"""`docker update`: new resource limits for a container, with Docker's rules.

A limit left out keeps its value; so does a zero, as in Docker, whose CLI sends every
field and zeroes for the flags not given (a `ResourceUpdate` is a `Resources` whose
fields at their default mean "keep"; `PidsLimit` 0 or -1 means unlimited, null keeps).
NanoCPUs and CPU period/quota exclude each other across the old and the new settings,
and a memory limit above the swap limit already set needs the swap limit too (`Cannot
update container …: Memory limit should be smaller than already set memoryswap limit,
update the memoryswap at the same time`, a 409). One difference: a container that never
had a memory limit gets the swap limit `create` would have given it (twice the memory)
instead of that error, which Docker users trip over on every first `docker update
--memory`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import attrs

from engine.containers.model import HostSpec
from engine.errors import Conflict, InvalidParameter
from engine.limits import LIMIT_BY_NAME, Resources


@attrs.frozen
class ResourceUpdate(Resources):
    """The limits `docker update` sets; a field at its default keeps the container's."""

    def changes(self) -> dict[str, object]:
        """The limits to change, by field name (only those `docker update` may change)."""
        return {name: value for name, value in self.non_defaults().items()
                if LIMIT_BY_NAME[name].updatable}

    def is_empty(self) -> bool:
        return not self.changes()


def updated_host(current: HostSpec, update: ResourceUpdate, online_cpus: int) -> HostSpec:
    """`current` with `update` applied, or Docker's error; `current` is left as it was."""
    old = current
    changes = update.changes()
    if "nano_cpus" in changes and old.cpu_period > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                       "already been set")
    if "nano_cpus" in changes and old.cpu_quota > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                       "already been set")
    if "cpu_period" in changes and old.nano_cpus > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if "cpu_quota" in changes and old.nano_cpus > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    if "memory" in changes and "memory_swap" not in changes:
        if old.memory == 0 and old.memory_swap == 0:
            changes["memory_swap"] = 2 * update.memory  # what create would have set
        elif old.memory_swap != -1 and update.memory > old.memory_swap:
            raise Conflict("Memory limit should be smaller than already set memoryswap "
                           "limit, update the memoryswap at the same time")
    new = attrs.evolve(old, **changes)  # type: ignore[arg-type]
    check_limits(new, online_cpus)
    return new


def _within_bounds(host: Resources, name: str) -> None:
    """The field's declared dockerd range (engine/limits.py), its message if outside."""
    bounds = LIMIT_BY_NAME[name].bounds
    message = bounds.violated_by(getattr(host, name)) if bounds is not None else None
    if message is not None:
        raise InvalidParameter(message)


def check_limits(host: Resources, online_cpus: int) -> None:
    """The limits Docker refuses at create and update (400s, in its words and order).

    Negative CPU shares fail only at start in dockerd (`invalid CPU shares (-5): value
    must be a positive integer`); moord refuses them here, with those words."""
    _within_bounds(host, "cpu_shares")
    _within_bounds(host, "memory")
    if host.memory and host.memory_swap > 0 and host.memory_swap < host.memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if host.memory_swap > 0 and not host.memory:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap "
                               "limit, see usage")
    _within_bounds(host, "memory_reservation")
    if host.memory and host.memory_reservation and host.memory < host.memory_reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation "
                               "limit, see usage")
    if host.nano_cpus and host.cpu_period:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if host.nano_cpus and host.cpu_quota:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if host.nano_cpus < 0 or host.nano_cpus > online_cpus * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {online_cpus}.00, as there are "
                               f"only {online_cpus} CPUs available")
    _within_bounds(host, "cpu_period")
    _within_bounds(host, "cpu_quota")
    if host.cpuset_cpus:
        available = "0" if online_cpus == 1 else f"0-{online_cpus - 1}"
        if max(_cpu_list(host.cpuset_cpus, "cpus")) >= online_cpus:
            raise InvalidParameter(f"Requested CPUs are not available - requested "
                                   f"{host.cpuset_cpus}, available: {available}")
    if host.cpuset_mems:
        nodes = memory_nodes()
        if not _cpu_list(host.cpuset_mems, "mems") <= _cpu_list(nodes, "mems"):
            raise InvalidParameter(f"Requested memory nodes are not available - requested "
                                   f"{host.cpuset_mems}, available: {nodes}")


def _cpu_list(spec: str, what: str) -> set[int]:
    """The kernel's list format, `0-2,4`, for `--cpuset-cpus` and `--cpuset-mems`."""
    wanted: set[int] = set()
    try:
        for part in spec.split(","):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first:
                raise ValueError(part)
            wanted.update(range(first, last + 1))
    except ValueError:
        raise InvalidParameter(f"Invalid value {spec} for cpuset {what}") from None
    return wanted


@functools.cache
def memory_nodes() -> str:
    """The host's online NUMA nodes (`0` on a machine without NUMA); read once: a sysfs
    file that answers at once, and nodes do not come and go under a running moord."""
    try:
        return Path("/sys/devices/system/node/online").read_text().strip() or "0"
    except OSError:
        return "0"


__all__ = ["ResourceUpdate", "check_limits", "updated_host"]
