"""The measures: wall time of whole docker CLI invocations, taken round-robin across engines.

A user waits for the whole `docker` command, so that is what is timed: CLI start-up, the
API round trips, and the engine's work. Engines take turns within every iteration (and the
one that goes first rotates), so a burst of load on this small machine lands on all of them
rather than on whichever engine happened to be running at the time.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench import procs
from bench.engines import DOCKER_CLI, Engine

CLI_TIMEOUT = 120.0


@dataclass(frozen=True)
class Measure:
    """A docker CLI command; the engine's own run flags go between options and image."""

    key: str
    title: str
    options: tuple[str, ...]
    image_and_command: tuple[str, ...] = ("busybox", "true")

    def argv(self, engine: Engine) -> list[str]:
        return [*self.options, *engine.run_args, *self.image_and_command]


RUN_NONE = Measure("run_rm_network_none", "`docker run --rm --network none busybox true`",
                   ("run", "--rm", "--network", "none"))
RUN_DEFAULT = Measure("run_rm_default_network", "`docker run --rm busybox true` (default network)",
                      ("run", "--rm"))
RUN_DETACHED = Measure("run_detached", "`docker run -d busybox sleep 600`", ("run", "-d"),
                       ("busybox", "sleep", "600"))


@dataclass
class Samples:
    """Successful timings (ms) and the errors of the failed attempts."""

    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def timed(engine: Engine, args: list[str]) -> tuple[float, str | None, str]:
    """(wall ms, error or None, stdout) of one docker CLI invocation against engine."""
    env = engine.env  # built before the clock starts: it is not the engine's time
    started = time.perf_counter()
    try:
        result = subprocess.run([DOCKER_CLI, *args], env=env, capture_output=True, text=True,
                                timeout=CLI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return (time.perf_counter() - started) * 1000, f"timed out after {CLI_TIMEOUT:.0f} s", ""
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        return elapsed, f"exit {result.returncode}: {result.stderr.strip()[-300:]}", result.stdout
    return elapsed, None, result.stdout


def rotated(engines: list[Engine], turn: int) -> list[Engine]:
    """The engines in order, starting from a different one each turn."""
    k = turn % len(engines)
    return engines[k:] + engines[:k]


def round_robin(engines: list[Engine], measures: list[Measure], runs: int,
                warmup: int) -> dict[str, dict[str, Samples]]:
    """warmup + runs iterations; in each, every measure on every engine. Warm-ups are dropped."""
    results = {m.key: {e.name: Samples() for e in engines} for m in measures}
    for i in range(warmup + runs):
        label = f"warm-up {i + 1}/{warmup}" if i < warmup else f"run {i - warmup + 1}/{runs}"
        progress(label)
        for measure in measures:
            for engine in rotated(engines, i):
                ms, error, _ = timed(engine, measure.argv(engine))
                if i < warmup:
                    continue
                if error is None:
                    results[measure.key][engine.name].ms.append(ms)
                else:
                    results[measure.key][engine.name].errors.append(error)
    return results


def summary(ms: list[float]) -> dict[str, Any]:
    """n, median, min, p90 (nearest rank) and max, in ms."""
    if not ms:
        return {"n": 0}
    ordered = sorted(ms)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "min_ms": round(ordered[0], 1),
        "p90_ms": round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1),
        "max_ms": round(ordered[-1], 1),
    }


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- detached containers: starts in a row, monitor and daemon memory, stop -t 0 ---------------


@dataclass
class Detached:
    """One engine's batch of detached `sleep 600` containers and what it cost."""

    starts: Samples = field(default_factory=Samples)
    ids: list[str] = field(default_factory=list)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    daemon_idle: dict[str, Any] = field(default_factory=dict)
    daemon_busy: dict[str, Any] = field(default_factory=dict)
    stop_ms: float | None = None
    stop_error: str | None = None


def daemon_memory(engine: Engine) -> dict[str, Any]:
    """RSS and PSS (kB) of the daemon and its helper processes (dockerd's containerd)."""
    parts: dict[str, dict[str, int]] = {}
    for pid, comm in engine.daemon_pids().items():
        mem = procs.memory_kb(pid)
        if mem is not None:
            key = comm if comm not in parts else f"{comm}[{pid}]"
            parts[key] = {"rss_kb": mem[0], "pss_kb": mem[1]}
    return {
        "rss_kb": sum(p["rss_kb"] for p in parts.values()),
        "pss_kb": sum(p["pss_kb"] for p in parts.values()),
        "processes": parts,
    }


def start_detached(engines: list[Engine], count: int) -> dict[str, Detached]:
    """`run -d busybox sleep 600` count times per engine, interleaved like the other measures."""
    batches = {e.name: Detached(daemon_idle=daemon_memory(e)) for e in engines}
    for i in range(count):
        if i % 10 == 0:
            progress(f"detached containers {i + 1}-{min(i + 10, count)}/{count}")
        for engine in rotated(engines, i):
            ms, error, out = timed(engine, RUN_DETACHED.argv(engine))
            batch = batches[engine.name]
            if error is None:
                batch.starts.ms.append(ms)
                batch.ids.append(out.strip())
            else:
                batch.starts.errors.append(error)
    for engine in engines:
        batch = batches[engine.name]
        batch.monitors = monitor_memory(engine, batch.ids)
        batch.daemon_busy = daemon_memory(engine)
    return batches


def monitor_memory(engine: Engine, ids: list[str]) -> list[dict[str, Any]]:
    """Each container's monitor (conmon, containerd-shim) is the parent of its PID 1."""
    if not ids:
        return []
    out = engine.docker("inspect", "--format", "{{.State.Pid}}", *ids).stdout
    found = []
    for line in out.split():
        init = procs.read_proc(int(line)) if line.isdigit() and int(line) > 0 else None
        monitor = procs.read_proc(init.ppid) if init else None
        mem = procs.memory_kb(monitor.pid) if monitor else None
        if monitor and mem:
            found.append({"pid": monitor.pid, "comm": monitor.comm, "rss_kb": mem[0], "pss_kb": mem[1]})
    return found


def stop_detached(engine: Engine, batch: Detached) -> None:
    """Time one `docker stop -t 0` of the whole batch, then remove the containers (untimed)."""
    if not batch.ids:
        return
    ms, error, _ = timed(engine, ["stop", "-t", "0", *batch.ids])
    batch.stop_ms, batch.stop_error = (ms, None) if error is None else (None, error)
    engine.docker("rm", "-f", *batch.ids, timeout=300)
