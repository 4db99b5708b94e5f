"""`docker stats`: one sample of a container's resource use, read from its cgroup.

cgroup v1 (cpuacct, memory, pids, blkio) and v2 (cpu.stat, memory.*, pids.*, io.stat)
give the same record; network counters come from `/proc/<pid>/net/dev`, read through
the container's own process (its network namespace). The host's total CPU time is
`/proc/stat`'s, in nanoseconds, as Docker reports `system_cpu_usage`. Blocking.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import attrs

from engine.runtime.cgroups import CgroupLayout

_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_UNLIMITED = 1 << 62


@attrs.frozen
class NetCounters:
    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@attrs.frozen
class Sample:
    read_ns: int  # wall clock (unix ns) of the sample
    cpu_total_ns: int = 0
    cpu_user_ns: int = 0
    cpu_kernel_ns: int = 0
    percpu_ns: tuple[int, ...] = ()
    system_cpu_ns: int = 0
    online_cpus: int = 1
    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_limit: int = 0
    memory_stats: dict[str, int] = attrs.field(factory=dict)
    pids_current: int = 0
    pids_limit: int = 0
    io_read_bytes: int = 0
    io_write_bytes: int = 0
    networks: dict[str, NetCounters] = attrs.field(factory=dict)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _int(path: Path, default: int = 0) -> int:
    text = _read(path).strip()
    if text == "max":
        return 0
    try:
        return int(text)
    except ValueError:
        return default


def _keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value.strip())
    return out


def host_cpu_ns() -> int:
    for line in _read(Path("/proc/stat")).splitlines():
        if line.startswith("cpu "):
            return sum(int(x) for x in line.split()[1:8]) * _NS_PER_TICK
    return 0


def net_counters(pid: int) -> dict[str, NetCounters]:
    out: dict[str, NetCounters] = {}
    if pid <= 0:
        return out
    for line in _read(Path(f"/proc/{pid}/net/dev")).splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if name == "lo" or len(fields) < 12:
            continue
        n = [int(x) for x in fields[:12]]
        out[name] = NetCounters(n[0], n[1], n[2], n[3], n[8], n[9], n[10], n[11])
    return out


def _v1_dir(layout: CgroupLayout, controller: str, rel: str) -> Path | None:
    for name, mount in layout.v1_mounts:
        if controller in name.split(","):
            return mount / rel
    return None


def sample(layout: CgroupLayout, relpath: str, pid: int) -> Sample:
    """One reading of the container's cgroup `relpath` (and its process `pid`)."""
    rel = relpath.strip("/")
    now = time.time_ns()
    online = len(os.sched_getaffinity(0)) or 1
    common = {"read_ns": now, "system_cpu_ns": host_cpu_ns(), "online_cpus": online,
              "networks": net_counters(pid)}
    if layout.version == 2 and layout.unified_mount is not None:
        d = layout.unified_mount / rel
        cpu = _keyed(d / "cpu.stat")
        mem = _keyed(d / "memory.stat")
        read = write = 0
        for line in _read(d / "io.stat").splitlines():
            for part in line.split()[1:]:
                key, _, value = part.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
        limit = _int(d / "memory.max")
        return Sample(
            cpu_total_ns=cpu.get("usage_usec", 0) * 1000,
            cpu_user_ns=cpu.get("user_usec", 0) * 1000,
            cpu_kernel_ns=cpu.get("system_usec", 0) * 1000,
            memory_usage=_int(d / "memory.current"),
            memory_max_usage=_int(d / "memory.peak"),
            memory_limit=limit or _host_memory(),
            memory_stats=mem,
            pids_current=_int(d / "pids.current"),
            pids_limit=_int(d / "pids.max"),
            io_read_bytes=read, io_write_bytes=write, **common)  # type: ignore[arg-type]
    cpuacct = _v1_dir(layout, "cpuacct", rel)
    memory = _v1_dir(layout, "memory", rel)
    pids = _v1_dir(layout, "pids", rel)
    blkio = _v1_dir(layout, "blkio", rel)
    user = kernel = 0
    percpu: tuple[int, ...] = ()
    total = 0
    if cpuacct is not None:
        total = _int(cpuacct / "cpuacct.usage")
        ticks = _keyed(cpuacct / "cpuacct.stat")
        user, kernel = ticks.get("user", 0) * _NS_PER_TICK, ticks.get("system", 0) * _NS_PER_TICK
        percpu = tuple(int(x) for x in _read(cpuacct / "cpuacct.usage_percpu").split())
    read = write = 0
    if blkio is not None:
        for line in _read(blkio / "blkio.throttle.io_service_bytes").splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "Read":
                read += int(fields[2])
            elif len(fields) == 3 and fields[1] == "Write":
                write += int(fields[2])
    limit = _int(memory / "memory.limit_in_bytes") if memory is not None else 0
    return Sample(
        cpu_total_ns=total, cpu_user_ns=user, cpu_kernel_ns=kernel, percpu_ns=percpu,
        memory_usage=_int(memory / "memory.usage_in_bytes") if memory is not None else 0,
        memory_max_usage=_int(memory / "memory.max_usage_in_bytes") if memory is not None else 0,
        memory_limit=limit if 0 < limit < _UNLIMITED else _host_memory(),
        memory_stats=_keyed(memory / "memory.stat") if memory is not None else {},
        pids_current=_int(pids / "pids.current") if pids is not None else 0,
        pids_limit=_int(pids / "pids.max") if pids is not None else 0,
        io_read_bytes=read, io_write_bytes=write, **common)  # type: ignore[arg-type]


def _host_memory() -> int:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


__all__ = ["NetCounters", "Sample", "host_cpu_ns", "net_counters", "sample"]
