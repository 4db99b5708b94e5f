"""Restart delay: from a container's exit to its restart under `--restart always`.

A container that fails at once (`sh -c 'exit 1'`) is restarted by its engine's restart
policy again and again. The engines' own event streams give both ends of every gap:
`die` (the engine has recorded the exit) and the next `start` (the container runs
again), in the engines' nanosecond clocks, so no polling delay of ours enters the figure.

moord and dockerd wait before each restart (Docker's back-off: 100 ms, doubling, up to a
minute), Podman does not. So each gap is reported both whole and less the back-off the
engine's policy prescribes for it ("restart cost"): the whole gap shows the doubling, the
cost is what the engine itself takes. A moord with a 10 ms back-off shows its cost with
hardly any waiting in it.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench import report
from bench.engines import Engine, EngineError, Moord
from bench.measures import progress, rotated, summary

COMMAND = ("sh", "-c", "exit 1")
GAPS_PER_CONTAINER = 5  # 100, 200, 400, 800, 1600 ms of back-off: the doubling shows
CONTAINER_TIMEOUT = 90.0  # seconds to wait for one container's gaps
POLL = 0.25


class FastMoord(Moord):
    """moord with a 10 ms restart back-off: the restart's own cost, without the waiting."""

    name = "moord-10ms"
    DELAY = 0.01

    def argv(self) -> list[str]:
        return [*super().argv(), "--restart-delay-initial", str(self.DELAY),
                "--restart-delay-max", str(self.DELAY)]


def back_off(engine: Engine, restart_no: int) -> float:
    """The delay (s) the engine's policy prescribes before its restart_no-th restart (1-based)."""
    if engine.name == "podman":
        return 0.0
    if isinstance(engine, FastMoord):
        return FastMoord.DELAY
    return min(0.1 * 2.0 ** (restart_no - 1), 60.0)  # Docker's defaults, which moord shares


@dataclass
class Gaps:
    """One engine's die → next start gaps (ms), by position within each container's run."""

    by_position: list[list[float]] = field(default_factory=lambda: [[] for _ in range(GAPS_PER_CONTAINER)])
    costs: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[float]:
        return [g for gaps in self.by_position for g in gaps]


def container_events(engine: Engine, cid: str, since: float) -> list[dict[str, Any]]:
    """This container's events since `since` (Unix time), oldest first.

    Whole seconds for --since/--until (Podman takes no fractions) and the container picked
    out here (Podman's compat API ignores a container filter with --until).
    """
    out = engine.docker("events", "--since", str(math.floor(since)), "--until",
                        str(math.ceil(time.time()) + 1), "--filter", "type=container",
                        "--format", "{{json .}}").stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    mine = [e for e in events if str(e.get("id") or e.get("Actor", {}).get("ID")) == cid]
    return sorted(mine, key=lambda e: int(e.get("timeNano", 0)))


def gaps_of(events: list[dict[str, Any]]) -> list[float]:
    """die → next start, in ms, in order."""
    gaps: list[float] = []
    died: int | None = None
    for event in events:
        action = event.get("Action") or event.get("status")
        stamp = int(event["timeNano"])
        if action == "die":
            died = stamp
        elif action == "start" and died is not None:
            gaps.append((stamp - died) / 1e6)
            died = None
    return gaps


def one_container(engine: Engine) -> tuple[list[float], list[str]]:
    """Run one always-failing container until it has been restarted GAPS_PER_CONTAINER times;
    its gaps, and what went wrong (a removal that failed does not lose the gaps)."""
    since = time.time()
    cid = engine.docker("run", "-d", "--restart", "always", *engine.run_args, "busybox",
                        *COMMAND).stdout.strip()
    gaps: list[float] = []
    errors: list[str] = []
    try:
        deadline = time.monotonic() + CONTAINER_TIMEOUT
        while len(gaps) < GAPS_PER_CONTAINER and time.monotonic() < deadline:
            time.sleep(POLL)
            gaps = gaps_of(container_events(engine, cid, since))
    finally:
        problem = remove(engine, cid)
        if problem:
            errors.append(problem)
    if len(gaps) < GAPS_PER_CONTAINER:
        errors.append(f"only {len(gaps)} restarts within {CONTAINER_TIMEOUT:.0f} s")
    return gaps[:GAPS_PER_CONTAINER], errors


def remove(engine: Engine, cid: str, attempts: int = 5) -> str | None:
    """`rm -f`, retried: Podman refuses it now and then while its restart loop is mid-way
    ("could not be stopped: container state improper"). None once it is gone."""
    error = ""
    for _ in range(attempts):
        try:
            engine.docker("rm", "-f", cid)
            return None
        except EngineError as e:
            error = str(e)
            time.sleep(0.2)
    return f"could not remove {cid[:12]} ({attempts} tries): {error}"


def measure(engines: list[Engine], restarts: int) -> dict[str, Gaps]:
    """At least `restarts` restarts per engine, a few containers each, engines taking turns."""
    containers = max(1, math.ceil(restarts / GAPS_PER_CONTAINER))
    results = {e.name: Gaps() for e in engines}
    for i in range(containers):
        progress(f"restart delay: container {i + 1}/{containers} per engine")
        for engine in rotated(engines, i):
            result = results[engine.name]
            try:
                gaps, errors = one_container(engine)
            except EngineError as e:
                gaps, errors = [], [str(e)]
            result.errors += errors
            for position, gap in enumerate(gaps):
                result.by_position[position].append(gap)
                result.costs.append(gap - 1000 * back_off(engine, position + 1))
    return results


def to_json(engines: list[Engine], results: dict[str, Gaps]) -> dict[str, Any]:
    """Medians per position, cost medians, ratios against moord (default back-off)."""
    by_name = {e.name: e for e in engines}
    out: dict[str, Any] = {"command": ["run", "-d", "--restart", "always", "busybox", *COMMAND],
                           "gaps_per_container": GAPS_PER_CONTAINER, "results": {}, "ratios": {}}
    for name, gaps in results.items():
        engine = by_name[name]
        out["results"][name] = {
            "restarts": len(gaps.all),
            "back_off_ms": [round(1000 * back_off(engine, p + 1), 1) for p in range(GAPS_PER_CONTAINER)],
            "median_gap_ms_by_position": [round(statistics.median(g), 1) if g else None
                                          for g in gaps.by_position],
            "first_gaps_ms": [round(g, 1) for g in _first_run(gaps)],
            "gap": summary(gaps.all),
            "first_gap": summary(gaps.by_position[0]),
            "cost": summary(gaps.costs),
            "samples_ms": [[round(x, 1) for x in g] for g in gaps.by_position],
            "errors": gaps.errors,
        }
    out["ratios"] = _ratios(out["results"])
    return out


def _first_run(gaps: Gaps) -> list[float]:
    """The gaps of the first container, in order: one run of the back-off's doubling."""
    return [g[0] for g in gaps.by_position if g]


def _ratios(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    moord = results.get("moord")
    if not moord:
        return {}
    ratios = {}
    for name, r in results.items():
        if name.startswith("moord"):  # moord-10ms is moord itself, with another back-off
            continue
        ratios[f"moord/{name}"] = {
            key: report.ratio(moord[key].get("median_ms"), r[key].get("median_ms"))
            for key in ("first_gap", "cost")}
    return ratios


def markdown(section: dict[str, Any]) -> list[str]:
    """The restart-delay table."""
    lines = [f"Restart delay: `docker run -d --restart always busybox sh -c 'exit 1'`, "
             f"{section['gaps_per_container']} restarts per container; each gap is `die` → next "
             "`start` in the engine's own events. Cost = the gap less the back-off the policy prescribes.",
             "", "| engine | restarts | back-off ms | median gap ms by restart | first container's gaps ms "
             f"| median cost ms (min{report.DASH}p90) | moord/engine: first gap, cost |",
             "|---|---|---|---|---|---|---|"]
    for name, r in section["results"].items():
        cost = r["cost"]
        ratio = section["ratios"].get(f"moord/{name}")
        rel = "—" if ratio is None else (f"{report.fmt_ratio(ratio['first_gap'])}, "
                                         f"{report.fmt_ratio(ratio['cost'])}")
        failed = f", {len(r['errors'])} errors" if r["errors"] else ""
        lines.append(
            f"| {name} | {r['restarts']}{failed} | {_join(r['back_off_ms'])} | "
            f"{_join(r['median_gap_ms_by_position'])} | {_join(r['first_gaps_ms'])} | "
            f"{report.fmt_ms(cost.get('median_ms'))} ({report.fmt_ms(cost.get('min_ms'))}{report.DASH}"
            f"{report.fmt_ms(cost.get('p90_ms'))}) | {rel} |")
    notes = [f"- {name}: {len(r['errors'])} errors; first: {r['errors'][0]}"
             for name, r in section["results"].items() if r["errors"]]
    return [*lines, *notes, ""]


def _join(values: list[float | None]) -> str:
    return ", ".join(report.fmt_ms(v) for v in values)
