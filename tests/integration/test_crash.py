"""`kill -9` of moord at random instants under client load; after each restart the records
must match the kernel, and nothing may leak.

Client threads run the docker CLI (create, start, run -d, stop -t 0, rm -f, run --rm,
pause, unpause, and a few on-failure containers) with short random sleeps; moord is
killed a random 0-300 ms after the clients resume, restarted, and checked with the
clients paused (tests/support/crashcheck.py says what is checked). Client commands that
fail because moord died under them are expected and only counted. The figures go to
stdout (`pytest -s`) and to a JSON file in the test's tmp dir, whose path is printed.

Environment: MOORAGE_CRASH_SEED (default: random, printed), MOORAGE_CRASH_KILLS
(default 100), MOORAGE_CRASH_CLIENTS (default 4), MOORAGE_CRASH_FIGURES (a path to copy
the figures to).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from tests.support import crashcheck
from tests.support.crashload import Client, Gate, Pool, Tally
from tests.support.daemon import Moord

KILL_DELAY_MAX = 0.3


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


@attrs.define
class Found:
    """A persistent disagreement, first seen in one round."""

    round: int
    key: str
    message: str
    in_flight_at_kill: list[str]
    record: dict[str, Any] | None


@attrs.define
class Run:
    """Everything the run learns; written out as the figures."""

    seed: int
    kills_wanted: int
    clients: int
    kills: int = 0
    ready_s: list[float] = attrs.field(factory=list)
    checked: list[int] = attrs.field(factory=list)
    statuses: Counter[str] = attrs.field(factory=Counter)
    found: list[Found] = attrs.field(factory=list)
    seen_keys: set[str] = attrs.field(factory=set)
    corrupt_log_lines: list[str] = attrs.field(factory=list)
    tracebacks: int = 0
    rounds: list[dict[str, Any]] = attrs.field(factory=list)
    end: dict[str, Any] = attrs.field(factory=dict)


def _start_timed(d: Moord) -> float:
    started = time.monotonic()
    d.start()
    return time.monotonic() - started


def _record_json(d: Moord, cid: str) -> dict[str, Any] | None:
    """The record of cid, as moord stored it (for a report), if any."""
    path = d.data_root / "state" / "containers" / f"{cid}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {"state": data.get("state"), "name": data.get("name")}


def _key_id(key: str) -> str:
    return key.split(":", 1)[1] if ":" in key else ""


def _by_subject(found: dict[str, str]) -> dict[str, list[str]]:
    """Disagreements grouped by the container (or path) they are about, for reading."""
    grouped: dict[str, list[str]] = {}
    for key, message in sorted(found.items()):
        grouped.setdefault(_key_id(key)[:12] or key, []).append(message)
    return grouped


def _kind(f: Found) -> str:
    """A disagreement without its container: `<check> (<what the record said>)`."""
    state = (f.record or {}).get("state") or {}
    status = state.get("status") if isinstance(state, dict) else None
    return f"{f.key.split(':', 1)[0]} (record: {status or 'none'})"


def _check_round(d: Moord, run: Run, round_no: int, in_flight: list[str],
                 pool: Pool, log_offset: int) -> int:
    """Check the invariants after a restart; note what is new. Returns the log offset."""
    started = time.monotonic()
    first, persistent = crashcheck.check_settled(d, frozenset(run.seen_keys))
    check_s = time.monotonic() - started
    run.checked.append(len(first.records))
    run.statuses.update(r.status for r in first.records)
    pool.replace([r.id for r in first.records])
    log_offset, corrupt, tracebacks = crashcheck.log_findings(d.log_path, log_offset)
    run.corrupt_log_lines += corrupt
    run.tracebacks += tracebacks
    new = {k: v for k, v in persistent.items() if k not in run.seen_keys}
    for key, message in sorted(new.items()):
        run.seen_keys.add(key)
        run.found.append(Found(round_no, key, message, in_flight, _record_json(d, _key_id(key))))
    for subject, messages in _by_subject(new).items():
        print(f"  round {round_no}: DISCREPANCY {subject}: {'; '.join(messages)} "
              f"(in flight at the kill: {in_flight})")
    run.rounds.append({"round": round_no, "in_flight_at_kill": in_flight,
                       "checked": len(first.records), "ready_s": round(run.ready_s[-1], 3),
                       "check_s": round(check_s, 3),
                       "persistent": sorted(persistent), "corrupt_log_lines": len(corrupt)})
    return log_offset


def _kill_rounds(d: Moord, run: Run, rng: random.Random, gate: Gate, pool: Pool) -> None:
    log_offset = 0
    for round_no in range(1, run.kills_wanted + 1):
        gate.open()
        delay = rng.uniform(0, KILL_DELAY_MAX)
        time.sleep(delay)
        in_flight = gate.in_flight()
        d.kill9()
        run.kills += 1
        gate.close()
        run.ready_s.append(_start_timed(d))
        log_offset = _check_round(d, run, round_no, in_flight, pool, log_offset)
        run.rounds[-1]["kill_delay_s"] = round(delay, 3)
        if round_no % 10 == 0:
            print(f"  {round_no} kills; {len(pool)} containers; ready in "
                  f"{statistics.median(run.ready_s[-10:]):.2f} s (median of the last 10)", flush=True)


def _final_check(d: Moord) -> dict[str, Any]:
    """After `rm -f` of everything and a clean stop: nothing of any container may remain."""
    ids = d.docker("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        d.docker("rm", "-f", *ids, timeout=300)
    left = d.docker("ps", "-aq").stdout.split()
    code = d.stop(signal.SIGTERM)
    time.sleep(0.5)  # conmons of containers just removed finish exiting
    k = crashcheck.scan(d)
    return {
        "removed_at_end": len(ids),
        "listed_after_rm": left,
        "moord_exit_code": code,
        "conmons": {cid: list(p) for cid, p in k.conmons.items()},
        "container_processes": {cid: list(p) for cid, p in k.cgroup_pids.items()},
        "mounts": crashcheck.mount_points_under(d.root),
        "crun_state_dirs": sorted(k.crun_dirs),
        "container_dirs": sorted(k.container_dirs),
        "container_cgroups": sorted(k.cgroup_dirs),
        "stored_records": sorted(k.stored_ids),
        "corrupt_files": list(k.corrupt_files),
    }


def _end_problems(end: dict[str, Any]) -> list[str]:
    problems = [f"{key}: {end[key]}" for key in (
        "listed_after_rm", "conmons", "container_processes", "mounts", "crun_state_dirs",
        "container_dirs", "container_cgroups", "stored_records", "corrupt_files") if end[key]]
    if end["moord_exit_code"] != 0:
        problems.append(f"moord exited with {end['moord_exit_code']} on SIGTERM")
    return problems


def _figures(run: Run, tally: Tally, wall: float) -> dict[str, Any]:
    totals = tally.totals()
    return {
        "seed": run.seed,
        "kills": run.kills,
        "kills_with_commands_in_flight": sum(1 for r in run.rounds if r["in_flight_at_kill"]),
        "clients": run.clients,
        "wall_s": round(wall, 1),
        "operations": {"attempted": totals.attempted, "succeeded": totals.succeeded,
                       "by_kind": {name: attrs.asdict(c) for name, c in tally.ops.items()}},
        "failure_kinds": dict(tally.failures.most_common()),
        "containers_checked": {
            "total": sum(run.checked), "min": min(run.checked, default=0),
            "median": statistics.median(run.checked) if run.checked else 0,
            "max": max(run.checked, default=0), "per_round": run.checked},
        "statuses_seen": dict(run.statuses),
        "ready_after_restart_s": {"median": round(statistics.median(run.ready_s), 3),
                                  "max": round(max(run.ready_s), 3)} if run.ready_s else {},
        "discrepancy_kinds": dict(Counter(_kind(f) for f in run.found).most_common()),
        "containers_with_discrepancies": len({_key_id(f.key) for f in run.found}),
        "discrepancies": [attrs.asdict(f) for f in run.found],
        "corrupt_record_log_lines": run.corrupt_log_lines,
        "tracebacks_in_moord_log": run.tracebacks,
        "end": run.end,
        "end_problems": _end_problems(run.end) if run.end else ["the run did not get to the end"],
        "rounds": run.rounds,
    }


def _write_figures(figures: dict[str, Any], tmp_path: Path, d: Moord) -> Path:
    """tmp_path/crash-figures.json, and a copy at $MOORAGE_CRASH_FIGURES if set: pytest
    keeps only its last few tmp dirs, and other test runs on the machine rotate them away."""
    out = tmp_path / "crash-figures.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    copy = os.environ.get("MOORAGE_CRASH_FIGURES", "").strip()
    if copy:
        Path(copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, copy)
    if d.log_path.exists():  # the daemon's root goes at cleanup; the log explains findings
        shutil.copyfile(d.log_path, tmp_path / "moord.log")
    return out


def _print_summary(figures: dict[str, Any], out: Path) -> None:
    ops = figures["operations"]
    checked = figures["containers_checked"]
    print(f"\ncrash test: seed {figures['seed']}, {figures['kills']} kills, "
          f"{figures['clients']} clients, {figures['wall_s']} s")
    print(f"  operations: {ops['attempted']} attempted, {ops['succeeded']} succeeded; "
          f"{figures['kills_with_commands_in_flight']} kills hit commands in flight")
    for name, c in ops["by_kind"].items():
        print(f"    {name:32} {c['succeeded']:5} / {c['attempted']}")
    print(f"  containers checked per round: min {checked['min']}, median {checked['median']}, "
          f"max {checked['max']} ({checked['total']} checks in all); statuses {figures['statuses_seen']}")
    print(f"  ready after restart: {figures['ready_after_restart_s']}")
    print(f"  discrepancies: {len(figures['discrepancies'])} about "
          f"{figures['containers_with_discrepancies']} containers {figures['discrepancy_kinds']}; "
          f"corrupt records: {len(figures['corrupt_record_log_lines'])}; "
          f"tracebacks in the moord log: {figures['tracebacks_in_moord_log']}")
    print(f"  at the end: {figures['end_problems'] or 'clean'}")
    print("  client failures by kind (expected while moord is killed):")
    for kind, n in list(figures["failure_kinds"].items())[:12]:
        print(f"    {n:5}  {kind}")
    print(f"  figures: {out}")


def test_kill9_under_load(fresh_moord: Callable[[], Moord], tmp_path: Path) -> None:
    seed = _env_int("MOORAGE_CRASH_SEED", random.SystemRandom().randrange(2**32))
    run = Run(seed=seed, kills_wanted=_env_int("MOORAGE_CRASH_KILLS", 100),
              clients=_env_int("MOORAGE_CRASH_CLIENTS", 4))
    print(f"\ncrash test seed: {seed} (MOORAGE_CRASH_SEED={seed} repeats the choices)", flush=True)
    rng = random.Random(seed)
    d = fresh_moord()
    d.start()
    d.import_busybox()
    gate, pool, tally = Gate(), Pool(), Tally()
    clients = [Client(d, gate, pool, tally, rng.randrange(2**32)) for _ in range(run.clients)]
    started = time.monotonic()
    for c in clients:
        c.start()
    try:
        try:
            _kill_rounds(d, run, rng, gate, pool)
        finally:
            gate.finish()
            for c in clients:
                c.join(timeout=120)
        run.end = _final_check(d)
    finally:  # the figures of a run cut short explain why it was
        figures = _figures(run, tally, time.monotonic() - started)
        out = _write_figures(figures, tmp_path, d)
        _print_summary(figures, out)

    assert [c.error for c in clients if c.error] == []
    assert run.kills >= run.kills_wanted
    assert not figures["corrupt_record_log_lines"], figures["corrupt_record_log_lines"]
    assert not run.found, (
        f"records disagree with the kernel: {figures['discrepancy_kinds']}; first ones:\n"
        + "\n".join(f"round {f.round}: {f.key}: {f.message} (in flight at the kill: "
                    f"{f.in_flight_at_kill})" for f in run.found[:8]))
    assert not figures["end_problems"], figures["end_problems"]
