"""Start order: how long moord takes, from its start, to have N restart-policy containers
running again, when they start in dependency order (`moorage.depends-on`) and when they
start all at once.

A moord of its own runs with `--stop-containers-on-shutdown`: a SIGTERM stops every
container before moord exits (reason `daemon-shutdown`, so a `--restart always` one is
due again at the next start), and the next moord's start-up pass starts them. Three
shapes of N `docker run -d --network none busybox sleep 3600`, all created once:

- flat: no dependencies, the plain start of the same N;
- chain: `DEPTH` levels of N/DEPTH, each container depending (`:started`) on one
  container of the level above, so N/DEPTH chains of `DEPTH`;
- healthy: the same chains with `:healthy`, the depended-on ones with a `true` health
  check probed every 200 ms during a start period (then every 30 s).

Each round measures one shape: its containers get `--restart always`, the others
`--restart no` (`docker update`), so only its N are started. The time is read from the
containers' own `State.StartedAt` (the last one) less the wall time at which the new
moord process was spawned; no polling of ours is in it. The shapes take turns, the
first rotating, so load that comes and goes hits them all.
"""

from __future__ import annotations

import datetime
import re
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from bench import report
from bench.adoption import running_ids
from bench.engines import Engine, EngineError, Moord
from bench.measures import progress, summary

COMMAND = ("--network", "none", "--stop-timeout", "1", "busybox", "sleep", "3600")
HEALTH = ("--health-cmd", "true", "--health-interval", "30s", "--health-start-period", "60s",
          "--health-start-interval", "200ms")
DEPTH = 5
ROUNDS = 5  # per shape
POLL = 0.02
START_TIMEOUT = 300.0
STOP_TIMEOUT = 120.0
SHAPES = ("flat", "chain", "healthy")


class OrderMoord(Moord):
    """moord that stops its containers when it gets SIGTERM, so its next start starts them."""

    name = "moord-order"

    def argv(self) -> list[str]:
        return [*super().argv(), "--stop-containers-on-shutdown"]


@dataclass(frozen=True)
class Planned:
    """One container of a shape: its name, what it depends on, whether it has a health check."""

    name: str
    depends_on: str | None = None
    health: bool = False


def plan(shape: str, count: int, depth: int = DEPTH) -> list[Planned]:
    """The containers of a shape, each after what it depends on (the order to create them).

    flat: `count` independent ones. chain / healthy: `depth` levels; the first takes the
    remainder of count/depth; container i of a level depends on container i of the level
    above, `:started` (chain) or `:healthy` (healthy, and the depended-on get a check).
    """
    if shape == "flat":
        return [Planned(f"flat-{i}") for i in range(count)]
    condition = {"chain": "started", "healthy": "healthy"}[shape]
    depth = max(1, min(depth, count))
    width = count // depth
    sizes = [count - width * (depth - 1), *[width] * (depth - 1)]
    out: list[Planned] = []
    for level, size in enumerate(sizes):
        last = level == depth - 1
        for i in range(size):
            dep = f"{shape}-{level - 1}-{i}:{condition}" if level else None
            out.append(Planned(f"{shape}-{level}-{i}", dep, health=shape == "healthy" and not last))
    return out


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_started_at(stamp: str) -> float:
    """RFC 3339 with up to nanoseconds (Docker's `StartedAt`) → Unix time in seconds."""
    found = _STAMP.match(stamp.strip())
    if not found:
        raise ValueError(f"not an RFC 3339 time: {stamp!r}")
    whole, fraction, zone = found.groups()
    base = datetime.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return base.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def out_of_order(planned: list[Planned], started: dict[str, float]) -> list[str]:
    """Dependents that started before what they depend on (should be none)."""
    late = []
    for p in planned:
        if p.depends_on:
            dep = p.depends_on.split(":")[0]
            if started[p.name] < started[dep]:
                late.append(f"{p.name} before {dep}")
    return late


@dataclass
class Shape:
    """One shape's rounds."""

    planned: list[Planned]
    ids: list[str] = field(default_factory=list)
    all_running_ms: list[float] = field(default_factory=list)  # moord spawned → last StartedAt
    pass_ms: list[float] = field(default_factory=list)  # first StartedAt → last
    api_ms: list[float] = field(default_factory=list)  # moord spawned → API answers
    unmet: list[int] = field(default_factory=list)  # depends-on-unmet events per round
    out_of_order: list[str] = field(default_factory=list)


def create(engine: Engine, shape: Shape) -> None:
    """Create the shape's containers (running, `--restart no` until their round)."""
    for p in shape.planned:
        flags = ["--name", p.name, "--restart", "no"]
        if p.depends_on:
            flags += ["--label", f"moorage.depends-on={p.depends_on}"]
        if p.health:
            flags += HEALTH
        shape.ids.append(engine.docker("run", "-d", *flags, *COMMAND).stdout.strip())


def restart_moord(engine: Engine, ids: list[str], result: Shape) -> float:
    """SIGTERM moord (it stops every container), spawn it again, wait for `ids` to run.

    Returns the wall time (Unix seconds) at which the new process was spawned."""
    assert engine.proc is not None
    engine.proc.send_signal(signal.SIGTERM)
    engine.proc.wait(STOP_TIMEOUT)
    spawned = time.time()
    began = time.perf_counter()
    engine.launch()
    assert engine.proc is not None
    answered = False
    while time.perf_counter() - began < START_TIMEOUT:
        if engine.proc.poll() is not None:
            raise EngineError(f"exited with {engine.proc.returncode}: {engine.log_tail()}")
        running = running_ids(engine.socket_path)
        if running is not None and not answered:
            answered = True
            result.api_ms.append((time.perf_counter() - began) * 1000)
        if running is not None and set(ids) <= running:
            return spawned
        time.sleep(POLL)
    raise EngineError(f"not all {len(ids)} containers running {START_TIMEOUT:.0f} s after moord's start")


def one_round(engine: Engine, shape: Shape, others: list[str]) -> None:
    if others:
        engine.docker("update", "--restart", "no", *others)
    engine.docker("update", "--restart", "always", *shape.ids)
    spawned = restart_moord(engine, shape.ids, shape)
    out = engine.docker("inspect", "--format", "{{.Name}} {{.State.StartedAt}}", *shape.ids).stdout
    started = {name.lstrip("/"): parse_started_at(stamp)
               for name, stamp in (line.split() for line in out.splitlines() if line.strip())}
    if min(started.values()) < spawned:
        raise EngineError("a container was not stopped by moord's shutdown (started before the new moord)")
    shape.all_running_ms.append((max(started.values()) - spawned) * 1000)
    shape.pass_ms.append((max(started.values()) - min(started.values())) * 1000)
    events = engine.docker("events", "--since", f"{spawned:.3f}", "--until", f"{time.time():.3f}",
                           "--filter", "type=container", "--format", "{{.Action}}").stdout
    shape.unmet.append(sum(1 for a in events.split() if a == "depends-on-unmet"))
    shape.out_of_order += out_of_order(shape.planned, started)


def measure(engine: Engine, count: int, rounds: int = ROUNDS) -> dict[str, Shape]:
    """Create every shape, then `rounds` rounds of each, the shapes taking turns."""
    shapes = {name: Shape(plan(name, count)) for name in SHAPES}
    for name, shape in shapes.items():
        progress(f"start order: creating {count} containers ({name})")
        create(engine, shape)
    for r in range(rounds):
        for name in SHAPES[r % len(SHAPES):] + SHAPES[:r % len(SHAPES)]:
            progress(f"start order: moord restart, {name} ({r + 1}/{rounds})")
            others = [cid for other, s in shapes.items() if other != name for cid in s.ids]
            one_round(engine, shapes[name], others)
    engine.remove_all_containers()
    return shapes


def run(engine: Engine, count: int) -> dict[str, Any]:
    """The JSON section; an engine failure is recorded, not raised."""
    try:
        shapes = measure(engine, count)
    except (EngineError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        return {"count": count, "error": str(e)[-400:]}
    return to_json(shapes, count)


def paired_ratio(shape_ms: list[float], flat_ms: list[float]) -> float | None:
    """Median of the round-by-round ratios: a shape's round and the flat one of the same
    turn are adjacent in time, so load that comes and goes between turns cancels."""
    pairs = [a / b for a, b in zip(shape_ms, flat_ms, strict=False) if b > 0]
    return round(statistics.median(pairs), 3) if pairs else None


def to_json(shapes: dict[str, Shape], count: int) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {
        name: {"all_running": summary(s.all_running_ms), "pass": summary(s.pass_ms),
                      "api": summary(s.api_ms), "samples_ms": [round(x, 1) for x in s.all_running_ms],
                      "depends_on_unmet": s.unmet, "out_of_order": s.out_of_order[:20]}
               for name, s in shapes.items()}
    flat = results["flat"]["all_running"].get("median_ms")
    ratios = {f"{name}/flat": report.ratio(results[name]["all_running"].get("median_ms"), flat)
              for name in SHAPES if name != "flat"}
    flat_pass = results["flat"]["pass"].get("median_ms")
    pass_ratios = {f"{name}/flat": report.ratio(results[name]["pass"].get("median_ms"), flat_pass)
                   for name in SHAPES if name != "flat"}
    per_round = {f"{name}/flat": paired_ratio(shapes[name].all_running_ms, shapes["flat"].all_running_ms)
                 for name in SHAPES if name != "flat"}
    return {"count": count, "depth": DEPTH, "command": ["run", "-d", "--restart", "always", *COMMAND],
            "results": results, "ratios": ratios, "pass_ratios": pass_ratios,
            "ratios_per_round": per_round, "error": None}


TITLES = {
    "flat": "flat: no dependencies (a plain start of the same N)",
    "chain": f"chain: {DEPTH} levels, each on `:started` of one above",
    "healthy": f"healthy: {DEPTH} levels, each on `:healthy` of one above (200 ms start interval)",
}


def markdown(section: dict[str, Any]) -> list[str]:
    """The start-order table."""
    lines = [f"Start order after a moord restart (moord-order, `--stop-containers-on-shutdown`): N "
             f"{report.TIMES} `docker run -d --restart always --network none busybox sleep 3600`, stopped "
             "by moord's SIGTERM; time from the new moord process's spawn to the last container's "
             "`State.StartedAt`, and the start-up pass (first to last `StartedAt`).", ""]
    if section.get("error"):
        return [*lines, f"failed: {section['error']}", ""]
    lines += [f"| shape (N = {section['count']}) | rounds | API answers, median ms | "
              f"all N running, median ms (min{report.DASH}max) | pass, median ms | "
              f"÷ flat | unmet | out of order |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in section["results"].items():
        every = r["all_running"]
        spread = f"{report.fmt_ms(every.get('min_ms'))}{report.DASH}{report.fmt_ms(every.get('max_ms'))}"
        rel = "—" if name == "flat" else report.fmt_ratio(section["ratios"].get(f"{name}/flat"))
        lines.append(f"| {TITLES.get(name, name)} | {every.get('n', 0)} | "
                     f"{report.fmt_ms(r['api'].get('median_ms'))} | {report.fmt_ms(every.get('median_ms'))} "
                     f"({spread}) | {report.fmt_ms(r['pass'].get('median_ms'))} | {rel} | "
                     f"{sum(r['depends_on_unmet'])} | {len(r['out_of_order']) or 'none'} |")
    paired = ", ".join(f"{k} {report.fmt_ratio(v)}" for k, v in section["ratios_per_round"].items())
    passes = ", ".join(f"{k} {report.fmt_ratio(v)}" for k, v in section["pass_ratios"].items())
    return [*lines, f"- median of the per-round ratios (a turn's rounds are adjacent in time): {paired}",
            f"- the start-up pass alone (first → last `StartedAt`), ratio of the medians: {passes}", ""]
