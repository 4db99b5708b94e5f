"""The soak's results: samples.csv, report.txt (curves as a table and ASCII sparklines,
trends per moord lifetime, lines, restarts, leaks), summary.json, and the closing summary."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.soak_analysis import Trend, lifetimes, marker_row, sparkline, trend
from bench.soak_load import ExecLoop, Follower, StatsStream, Worker

WIDTH = 72
WARMUP_S = 30.0  # a fresh moord loads its state and fills its caches first: not a leak
# (series, tolerance of the median, absolute floor): what "flat" allows within one lifetime
FLATNESS = (("rss_kb", 0.05, 2048.0), ("fds", 0.05, 8.0), ("threads", 0.10, 4.0))
SERIES = ("rss_kb", "fds", "threads", "containers", "running", "conmon", "other_procs")
TABLE_COLUMNS = ("t_s", "utc", "pid", "rss_kb", "fds", "threads", "containers", "running", "conmon",
                 "crun", "other_procs", "lines_followed", "lost", "execs_ok", "stats_frames",
                 "rotations_seen", "event")
PROBLEM = re.compile(r"Traceback|\b(ERROR|CRITICAL)\b")


def log_problems(path: Path, keep: int = 20) -> dict[str, Any]:
    """Tracebacks and ERROR lines in moord's log: how many, and the first few."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"count": 0, "first": [], "note": f"no log at {path}"}
    found = [line[:300] for line in lines if PROBLEM.search(line)]
    return {"count": len(found), "first": found[:keep]}


def workers_json(workers: Sequence[Worker]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for w in workers:
        entry: dict[str, Any] = {"name": w.name, "notes": w.notes}
        if isinstance(w, Follower):
            c = w.check
            entry.update(container=w.container[:12], received=c.received, lost=c.lost, gaps=c.gaps[:20],
                         seam_duplicates=c.seam_duplicates, duplicates=c.duplicates, reordered=c.reordered,
                         streams=c.streams, reconnects=w.reconnects, ended_while_up=w.ended_while_up,
                         stalls=w.stalls,
                         other_lines=w.other_lines)
        elif isinstance(w, ExecLoop):
            entry.update(ok=w.ok, failed_while_down=w.failed_down, failed_while_up=w.failed_up)
        elif isinstance(w, StatsStream):
            entry.update(frames=w.frames, reconnects=w.reconnects, ended_while_up=w.ended_while_up)
        out.append(entry)
    return out


def trends(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per moord lifetime and series (after WARMUP_S): min, max, slope per minute, flat or not."""
    rows = []
    for pid, start, end in lifetimes([s["pid"] for s in samples]):
        part = samples[start:end]
        t0 = part[0]["t_s"]
        kept = [s for s in part if s["t_s"] - t0 >= WARMUP_S and s["rss_kb"] > 0]
        row: dict[str, Any] = {"pid": pid, "from_s": t0, "to_s": part[-1]["t_s"], "samples": len(kept)}
        for key, tolerance, floor in FLATNESS:
            t: Trend = trend([s["t_s"] for s in kept], [float(s[key]) for s in kept],
                             tolerance=tolerance, floor=floor)
            row[key] = {"min": t.minimum, "max": t.maximum, "slope_per_min": round(t.slope_per_min, 2),
                        "flat": t.flat}
        rows.append(row)
    return rows


def totals(result: dict[str, Any]) -> dict[str, Any]:
    workers = result.get("workers", [])
    followers = [w for w in workers if "received" in w]
    last = result.get("last_written") or {}
    restarts = result.get("restarts", [])
    samples = result.get("samples", [])
    return {
        "lines_written": sum(v + 1 for v in last.values() if v is not None),
        "lines_followed": sum(w["received"] for w in followers),
        "lines_lost": sum(w["lost"] for w in followers),
        "duplicates": sum(w["duplicates"] for w in followers),
        "seam_duplicates": sum(w["seam_duplicates"] for w in followers),
        "follower_reconnects": sum(w["reconnects"] for w in followers),
        "follower_stalls": sum(w["stalls"] for w in followers),
        "streams_ended_while_up": sum(w.get("ended_while_up", 0) for w in workers),
        "kills": sum(1 for r in restarts if r["how"] == "kill"),
        "restarts": sum(1 for r in restarts if r["how"] == "term"),
        "not_readopted": sum(len(r["not_adopted"]) for r in restarts),
        "execs_ok": sum(w.get("ok", 0) for w in workers),
        "execs_failed_while_up": sum(w.get("failed_while_up", 0) for w in workers),
        "execs_failed_while_down": sum(w.get("failed_while_down", 0) for w in workers),
        "stats_frames": sum(w.get("frames", 0) for w in workers),
        "crasher_restarts": sum(int(v) for v in (result.get("crasher_restart_counts") or {}).values()),
        "leaks": sum(len(v) for v in (result.get("leaks") or {}).values()),
        "rotations_seen": samples[-1]["rotations_seen"] if samples else 0,
        "moord_log_problems": (result.get("moord_log_problems") or {}).get("count", 0),
    }


def write(out: Path, result: dict[str, Any]) -> None:
    samples = result.get("samples", [])
    result["trends"] = trends(samples)
    result["totals"] = totals(result)
    with open(out / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(samples)
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.txt").write_text(report_text(result))


def curves(samples: Sequence[dict[str, Any]], restarts: Sequence[dict[str, Any]]) -> list[str]:
    """One ASCII sparkline per series (scaled to its own min..max), and a row marking the
    kills (K) and SIGTERM restarts (T) in time."""
    if not samples:
        return ["(no samples)"]
    times = [float(s["t_s"]) for s in samples]
    lines = [f"curves, {times[0]:.0f}-{times[-1]:.0f} s, {len(samples)} samples "
             f"(levels {'_.-:=+*#%@'!r}, each series between its own min and max):"]
    for key in SERIES:
        values = [float(s[key]) for s in samples]
        lines.append(f"  {key:>12} |{sparkline(values, WIDTH)}| {min(values):g}..{max(values):g}")
    marks = [(float(r["at_s"]), "K" if r["how"] == "kill" else "T") for r in restarts]
    lines.append(f"  {'moord':>12} |{marker_row(times, marks, WIDTH)}| K: SIGKILL, T: SIGTERM + start")
    return lines


def minute_table(samples: Sequence[dict[str, Any]]) -> list[str]:
    """The sample nearest each whole minute, and the event samples (restarts)."""
    if not samples:
        return []
    picked, minute = [], 0
    for s in samples:
        if s["t_s"] >= minute * 60 or s["event"]:
            picked.append(s)
            minute = int(s["t_s"] // 60) + 1
    cols = ("t_s", "utc", "pid", "rss_kb", "fds", "threads", "containers", "running", "conmon",
            "other_procs", "lines_followed", "lost", "execs_ok", "rotations_seen", "event")
    rows = [cols, *[tuple(str(s[c]) for c in cols) for s in picked]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    return ["  " + "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows]


def trend_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [f"per moord lifetime (samples from {WARMUP_S:.0f} s after its start; flat: the fitted rise "
             "within 5 % of the median + 2 MiB RSS, 5 % + 8 fds, 10 % + 4 threads):"]
    for r in rows:
        parts = []
        for key, _, _ in FLATNESS:
            t = r[key]
            parts.append(f"{key} {t['min']:g}..{t['max']:g} slope {t['slope_per_min']:+g}/min "
                         f"{'flat' if t['flat'] else 'RISING'}")
        lines.append(f"  moord[{r['pid']}] {r['from_s']:.0f}-{r['to_s']:.0f} s ({r['samples']} samples): "
                     + "; ".join(parts))
    return lines


def report_text(result: dict[str, Any]) -> str:
    samples = result.get("samples", [])
    lines = [f"moord soak, started {result['started_at']}: {result['command']}",
             f"load average before {result['load_before']}, after {result.get('load_after')}", ""]
    lines += [*summary_text(result).splitlines(), ""]
    lines += [*trend_table(result["trends"]), ""]
    lines += [*curves(samples, result.get("restarts", [])), ""]
    lines += ["samples at about each minute and at each restart:", *minute_table(samples), ""]
    lines += ["restarts:"] + [
        f"  {r['at_s']:.0f} s {r['how']}: moord[{r['old_pid']}] -> moord[{r['new_pid']}], "
        f"down {r['down_s']} s, "
        f"re-adopted {r['adopted']}" + (f", NOT re-adopted: {r['not_adopted']}" if r["not_adopted"] else "")
        for r in result.get("restarts", [])] + [""]
    lines += ["workers:"] + [f"  {json.dumps(w)}" for w in result.get("workers", [])] + [""]
    lines += ["cleanup:"] + [f"  {n}" for n in result.get("cleanup", [])]
    problems = (result.get("moord_log_problems") or {}).get("first") or []
    if problems:
        lines += ["", "moord's log, tracebacks and ERROR lines (first ones):"] + [f"  {p}" for p in problems]
    if result.get("notes"):
        lines += ["", "notes:"] + [f"  {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def summary_text(result: dict[str, Any]) -> str:
    t = result.get("totals") or totals(result)
    leaks = result.get("leaks")
    rows = [
        f"lines written {t['lines_written']}, followed {t['lines_followed']}, LOST {t['lines_lost']} "
        f"(duplicates {t['duplicates']}; repeats at reconnect seams, dropped: {t['seam_duplicates']}; "
        f"follower reconnects {t['follower_reconnects']}, stalls {t['follower_stalls']})",
        f"log rotations seen (lower bound) {t['rotations_seen']}; log and stats streams that ended "
        f"while moord was up: {t['streams_ended_while_up']}",
        f"moord: {t['kills']} SIGKILLs, {t['restarts']} SIGTERM restarts; containers not re-adopted: "
        f"{t['not_readopted']}",
        f"execs ok {t['execs_ok']}, failed while moord was up {t['execs_failed_while_up']}, "
        f"while it was down {t['execs_failed_while_down']}; stats frames {t['stats_frames']}; "
        f"crash-loop restarts {t['crasher_restarts']}",
    ]
    if leaks is None:
        rows.append("leaks: not checked (the run did not get that far)")
    elif leaks:
        rows.append(f"LEAKS after removing everything and waiting {result.get('settle_s')} s:")
        rows += [f"  {category}: {items}" for category, items in leaks.items()]
    else:
        rows.append(f"leaks: none (processes, mounts, cgroups, links, nftables, container files; "
                    f"clean {result.get('settle_s')} s after removing everything)")
    flat = [r for r in result.get("trends") or [] if not all(r[k]["flat"] for k, _, _ in FLATNESS)]
    rows.append("memory, fds, threads: " + ("flat in every moord lifetime" if not flat else
                                             "RISING in " + ", ".join(f"moord[{r['pid']}]" for r in flat)))
    if t["moord_log_problems"]:
        rows.append(f"moord's log: {t['moord_log_problems']} tracebacks or ERROR lines "
                    "(report.txt lists them)")
    if result.get("error"):
        rows.append(f"STOPPED EARLY: {result['error']}")
    not_clean = [n for n in result.get("cleanup", []) if n.startswith("NOT CLEAN")]
    rows += not_clean
    return "\n".join(rows)
