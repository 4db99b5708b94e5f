"""Log measures (issue 4): a million lines written and read back, and `--tail 10` on 1 GB.

Run through run_bench.py (`--logs yes` adds them, `--logs only` runs nothing else), so
the engines are brought up, given busybox, and torn down the same way as for the other
measures. Everything is timed through the docker CLI, one whole invocation at a time.

1. **A million lines.** A container prints 1,000,000 numbered 70-byte lines (70 MB) with
   busybox awk. *write*: `docker run -d` + `docker wait`, the time for the engine to take
   them all into its log; *read*: `docker logs <c>` with its stdout going to a file (as
   `> /dev/null` would, but kept to check it afterwards, outside the clock). The read-back
   is compared with what the container printed: lines lost and whether the bytes match.
   Every engine gets `--log-opt max-size=200m` so none rotates or truncates: the peers'
   defaults do not rotate, moord's default (5 files of 20m) would keep only the last 100 MB.
   All containers here run with `--network none`: the logs need no network.
2. **`--tail 10` on a 1 GB log.** One container per engine prints 700 MB (`yes` of a
   100-byte line through `head -c`, with `--log-opt max-size=2g` so nothing rotates),
   which each engine's format makes a log file of 1.0-1.2 GB (the report gives the size);
   `docker logs --tail 10` is then timed several times per engine, interleaved. For moord
   the bytes it read per tail are taken from `/proc/<moord>/io` (rchar).

Engines take turns within each round, the first one rotating, as in `measures.round_robin`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.engines import DOCKER_CLI, Engine
from bench.measures import progress, rotated, summary
from bench.report import DASH

MILLION = 1_000_000
PAD = "x" * 56  # "line 0000000 " + PAD + "\n" = 70 bytes
WRITE_TIMEOUT = 600.0
TAIL_LINE = "y" * 99  # `yes` of this: 100-byte lines
# No network for any engine: logs do not need one, and bridge set-up is not what is measured.
KEEP_ALL_MILLION = ("--network", "none", "--log-opt", "max-size=200m")
KEEP_ALL_BIG = ("--network", "none", "--log-opt", "max-size=2g")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """run_bench.py's options for these measures."""
    parser.add_argument("--logs", choices=("no", "yes", "only"), default="no",
                        help="log measures: 1M lines write/read back, --tail 10 on a 1 GB log "
                             "(yes: as well as the others; only: nothing else)")
    parser.add_argument("--log-runs", type=int, default=3,
                        help="rounds of the 1M-line write and read back, per engine")
    parser.add_argument("--tail-runs", type=int, default=9, help="timed `logs --tail 10` per engine")
    parser.add_argument("--tail-log-mb", type=int, default=700,
                        help="MB of container output for the `--tail 10` log (700: a ~1 GB log file)")


def million_script() -> str:
    return ("awk 'BEGIN { for (i = 0; i < " + str(MILLION) + "; i++) printf \"line %07d "
            + PAD + "\\n\", i }'")


def million_expected() -> tuple[int, str]:
    """(size, sha256) of what the million-line container prints."""
    digest = hashlib.sha256()
    size = 0
    for start in range(0, MILLION, 100_000):
        block = b"".join(b"line %07d %s\n" % (i, PAD.encode()) for i in range(start, start + 100_000))
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


# --- running the CLI --------------------------------------------------------------------------


@dataclass
class Timed:
    ms: float
    error: str | None = None
    stdout: str = ""


def cli(engine: Engine, args: list[str], *, stdout: Any = subprocess.PIPE,
        timeout: float = WRITE_TIMEOUT) -> Timed:
    """One docker CLI invocation against `engine`, timed from spawn to exit."""
    env = engine.env
    started = time.perf_counter()
    try:
        result = subprocess.run([DOCKER_CLI, *args], env=env, stdout=stdout, stderr=subprocess.PIPE,
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Timed((time.perf_counter() - started) * 1000, f"timed out after {timeout:.0f} s")
    ms = (time.perf_counter() - started) * 1000
    out = result.stdout.decode(errors="replace") if isinstance(result.stdout, bytes) else ""
    if result.returncode != 0:
        return Timed(ms, f"exit {result.returncode}: {result.stderr.decode(errors='replace')[-300:]}", out)
    return Timed(ms, None, out)


def run_detached(engine: Engine, options: tuple[str, ...], script: str) -> Timed:
    """`docker run -d … busybox sh -c script` + `docker wait`: until the container has exited."""
    started = time.perf_counter()
    run = cli(engine, ["run", "-d", *options, *engine.run_args, "busybox", "sh", "-c", script])
    if run.error:
        return run
    cid = run.stdout.strip()
    waited = cli(engine, ["wait", cid])
    ms = (time.perf_counter() - started) * 1000
    if waited.error:
        return Timed(ms, f"wait: {waited.error}", cid)
    if waited.stdout.strip() != "0":
        return Timed(ms, f"container exited {waited.stdout.strip()}", cid)
    return Timed(ms, None, cid)


def remove(engine: Engine, cid: str) -> None:
    with contextlib.suppress(Exception):
        engine.docker("rm", "-f", cid, timeout=300)


# --- 1. a million lines ---------------------------------------------------------------------------


@dataclass
class MillionSamples:
    write_ms: list[float] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)
    lines_read: list[int] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def check_read_back(path: Path, expected: tuple[int, str]) -> tuple[int, bool]:
    """(lines, bytes identical to what was printed) of a `docker logs` output file."""
    digest = hashlib.sha256()
    lines = size = 0
    with open(path, "rb") as f:
        while block := f.read(4 * 1024 * 1024):
            digest.update(block)
            lines += block.count(b"\n")
            size += len(block)
    return lines, (size, digest.hexdigest()) == expected


def million_round(engine: Engine, samples: MillionSamples, scratch: Path,
                  expected: tuple[int, str]) -> None:
    written = run_detached(engine, KEEP_ALL_MILLION, million_script())
    if written.error:
        samples.errors.append(f"write: {written.error}")
        if written.stdout:
            remove(engine, written.stdout.strip())
        return
    cid = written.stdout.strip()
    samples.write_ms.append(written.ms)
    out_path = scratch / f"{engine.name}-logs.out"
    try:
        with open(out_path, "wb") as out:
            read = cli(engine, ["logs", cid], stdout=out)
        if read.error:
            samples.errors.append(f"read: {read.error}")
            return
        samples.read_ms.append(read.ms)
        lines, exact = check_read_back(out_path, expected)
        samples.lines_read.append(lines)
        samples.exact.append(exact)
    finally:
        out_path.unlink(missing_ok=True)
        remove(engine, cid)


def measure_million(engines: list[Engine], runs: int, scratch: Path) -> dict[str, MillionSamples]:
    expected = million_expected()
    samples = {e.name: MillionSamples() for e in engines}
    for i in range(runs):
        for engine in rotated(engines, i):
            progress(f"1M lines, round {i + 1}/{runs}: {engine.name}")
            million_round(engine, samples[engine.name], scratch, expected)
    return samples


# --- 2. --tail 10 on a big log --------------------------------------------------------------------


@dataclass
class TailSamples:
    fill_ms: float | None = None
    log_bytes: int | None = None
    ms: list[float] = field(default_factory=list)
    daemon_read: list[int] = field(default_factory=list)  # moord only: rchar per tail
    errors: list[str] = field(default_factory=list)
    cid: str = ""


def log_file_size(engine: Engine, cid: str) -> int | None:
    """The size of the container's log file(s), from inspect's LogPath or where moord keeps it."""
    with contextlib.suppress(Exception):
        path = json.loads(engine.docker("inspect", cid).stdout)[0].get("LogPath") or ""
        if path and Path(path).exists():
            return Path(path).stat().st_size
    moord_dir = engine.root / "data" / "containers" / cid
    files = list(moord_dir.glob("ctr.log*")) if moord_dir.is_dir() else []
    return sum(f.stat().st_size for f in files) if files else None


def daemon_rchar(engine: Engine) -> int | None:
    if engine.name != "moord" or engine.proc is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{engine.proc.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return None


def fill(engine: Engine, megabytes: int, samples: TailSamples) -> None:
    """A stopped container whose log holds `megabytes` MB of 100-byte lines."""
    script = f"yes {TAIL_LINE} | head -c {megabytes * 1_000_000}"
    filled = run_detached(engine, KEEP_ALL_BIG, script)
    samples.cid = filled.stdout.strip()
    if filled.error:
        samples.errors.append(f"fill: {filled.error}")
        return
    samples.fill_ms = filled.ms
    samples.log_bytes = log_file_size(engine, samples.cid)


def tail_once(engine: Engine, samples: TailSamples) -> None:
    before = daemon_rchar(engine)
    tail = cli(engine, ["logs", "--tail", "10", samples.cid], timeout=300)
    after = daemon_rchar(engine)
    if tail.error:
        samples.errors.append(tail.error)
        return
    if tail.stdout != f"{TAIL_LINE}\n" * 10:
        samples.errors.append(f"wrong tail: {tail.stdout[:200]!r}")
        return
    samples.ms.append(tail.ms)
    if before is not None and after is not None:
        samples.daemon_read.append(after - before)


def measure_tail(engines: list[Engine], runs: int, megabytes: int) -> dict[str, TailSamples]:
    samples = {e.name: TailSamples() for e in engines}
    try:
        for engine in engines:
            progress(f"writing a {megabytes} MB log on {engine.name}")
            fill(engine, megabytes, samples[engine.name])
        for i in range(runs):
            progress(f"logs --tail 10, round {i + 1}/{runs}")
            for engine in rotated(engines, i):
                if samples[engine.name].fill_ms is not None:
                    tail_once(engine, samples[engine.name])
    finally:
        for engine in engines:  # a GB per engine: not a byte longer than needed
            if samples[engine.name].cid:
                remove(engine, samples[engine.name].cid)
    return samples


# --- the whole thing ----------------------------------------------------------------------------


def run(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Both log measures on every engine; the figures go to result["logs"]."""
    with tempfile.TemporaryDirectory(prefix="moorage-bench-logs-") as scratch:
        million = measure_million(engines, args.log_runs, Path(scratch))
    tail = measure_tail(engines, args.tail_runs, args.tail_log_mb)
    if args.logs == "only":
        result["notes"].append("--logs only: the run, detached and supervision measures were not taken.")
    result["logs"] = {
        "million": million_json(million),
        "tail": tail_json(tail, args.tail_log_mb),
    }


def _ratios(results: dict[str, dict[str, Any]], key: str) -> dict[str, float | None]:
    moord = results.get("moord", {}).get(key)
    return {f"moord/{name}": report.ratio(moord, r.get(key)) for name, r in results.items()
            if name != "moord"}


def million_json(samples: dict[str, MillionSamples]) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        write, read = summary(s.write_ms), summary(s.read_ms)
        results[name] = {
            "write": write, "read": read,
            "write_ms": [round(x, 1) for x in s.write_ms], "read_ms": [round(x, 1) for x in s.read_ms],
            "lines_read": s.lines_read,
            "lines_lost": [MILLION - n for n in s.lines_read],
            "bytes_exact": s.exact,
            "errors": s.errors,
            "write_median_ms": write.get("median_ms"), "read_median_ms": read.get("median_ms"),
        }
    return {"lines": MILLION, "bytes": MILLION * 70, "results": results,
            "ratios": {"write": _ratios(results, "write_median_ms"),
                       "read": _ratios(results, "read_median_ms")}}


def tail_json(samples: dict[str, TailSamples], megabytes: int) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        stats = summary(s.ms)
        results[name] = {
            **stats, "samples_ms": [round(x, 1) for x in s.ms],
            "fill_ms": None if s.fill_ms is None else round(s.fill_ms, 1),
            "log_bytes": s.log_bytes,
            "daemon_read_bytes": s.daemon_read,
            "daemon_read_median": statistics.median(s.daemon_read) if s.daemon_read else None,
            "errors": s.errors,
        }
    return {"output_mb": megabytes, "results": results, "ratios": _ratios(results, "median_ms")}


# --- the report ---------------------------------------------------------------------------------


def markdown(result: dict[str, Any]) -> str:
    """The log measures' section of the report (empty if they did not run)."""
    logs = result.get("logs")
    if not logs:
        return ""
    lines = ["### Logs", ""]
    lines += _million_table(logs["million"])
    lines += _tail_table(logs["tail"])
    return "\n".join(lines) + "\n"


def _seconds(ms: float | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.2f}"


def _million_table(m: dict[str, Any]) -> list[str]:
    lines = [f"{m['lines']:,} lines of 70 bytes ({m['bytes'] / 1e6:.0f} MB) printed by one container; "
             "write = `run -d` + `wait`, read = `docker logs` into a file; medians, seconds "
             f"(min{DASH}max), lines per second of the median.", "",
             "| engine | n | write s | read s | write lines/s | read lines/s | lines lost | bytes exact |"
             " write moord/engine | read moord/engine |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in m["results"].items():
        w, rd = r["write"], r["read"]
        cells = [
            name, str(min(w.get("n", 0), rd.get("n", 0))),
            _spread(w), _spread(rd),
            _rate(m["lines"], w.get("median_ms")), _rate(m["lines"], rd.get("median_ms")),
            ", ".join(str(n) for n in r["lines_lost"]) or "—",
            "yes" if r["bytes_exact"] and all(r["bytes_exact"]) else ("no" if r["bytes_exact"] else "—"),
            "—" if name == "moord" else report.fmt_ratio(m["ratios"]["write"].get(f"moord/{name}")),
            "—" if name == "moord" else report.fmt_ratio(m["ratios"]["read"].get(f"moord/{name}")),
        ]
        if r["errors"]:
            cells[0] += f" ({len(r['errors'])} failed: {r['errors'][0][:120]})"
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _spread(stats: dict[str, Any]) -> str:
    """`median (min to max)` in seconds."""
    low, high = _seconds(stats.get("min_ms")), _seconds(stats.get("max_ms"))
    return f"{_seconds(stats.get('median_ms'))} ({low}{DASH}{high})"


def _rate(count: int, ms: float | None) -> str:
    return "—" if not ms else f"{count / (ms / 1000):,.0f}"


def _tail_table(t: dict[str, Any]) -> list[str]:
    lines = [f"`docker logs --tail 10` of a stopped container whose output was {t['output_mb']} MB of "
             f"100-byte lines (`yes | head -c`); ms, median (min{DASH}p90).", "",
             f"| engine | log file | n | median ms | min{DASH}p90 ms | moord/engine | daemon read per tail |",
             "|---|---|---|---|---|---|---|"]
    for name, r in t["results"].items():
        size = "—" if r["log_bytes"] is None else f"{r['log_bytes'] / 1e9:.2f} GB"
        read = "—" if r["daemon_read_median"] is None else f"{r['daemon_read_median'] / 1024:.0f} KiB"
        rel = "—" if name == "moord" else report.fmt_ratio(t["ratios"].get(f"moord/{name}"))
        cells = [name, size, str(r.get("n", 0)), report.fmt_ms(r.get("median_ms")),
                 f"{report.fmt_ms(r.get('min_ms'))}{DASH}{report.fmt_ms(r.get('p90_ms'))}", rel, read]
        if r["errors"]:
            cells[0] += f" ({len(r['errors'])} failed: {r['errors'][0][:120]})"
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
