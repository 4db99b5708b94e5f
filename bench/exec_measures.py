"""`docker exec` round trips: how long a user waits for a command in a running container.

Run through run_bench.py (`--execs yes`, the default, adds them; `--execs only` runs nothing
else). Every engine gets one container, `docker run -d busybox sleep 3600` (with the
engine's own run flags), and then, engines taking turns as in measures.round_robin:

1. **`docker exec C true`** — the issue's round trip: exec create, attached start over a
   hijacked connection, the runtime's exec, the exit, `GET /exec/{id}/json` for the code;
2. **`docker exec C sh -c 'echo …'`** — the same with output to carry back;
3. **`docker exec -i C cat`** with 64 KiB on stdin — input through the hijacked connection,
   its half-close, and the same bytes back (checked).

All through the same docker CLI 28, against moord, dockerd and Podman's service. Beside the
wall time, the CPU seconds the daemon's process tree used per exec (the runtime's exec and
conmon, or containerd and its shim, are its children or reaped by it).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import time
from typing import Any

import attrs

from bench import report
from bench.engines import DOCKER_CLI, Engine, EngineError
from bench.image_measures import daemon_cpu
from bench.measures import CLI_TIMEOUT, progress, rotated, summary

CONTAINER = "benchexec"
PAYLOAD = bytes(range(256)) * 256  # 64 KiB, every byte value
MEASURES = (
    ("true", "`docker exec C true`", ("exec", CONTAINER, "true"), b""),
    ("echo", "`docker exec C sh -c 'echo …'`", ("exec", CONTAINER, "sh", "-c", "echo exec-bench"), b""),
    ("stdin", "`docker exec -i C cat` (64 KiB in and back)", ("exec", "-i", CONTAINER, "cat"), PAYLOAD),
)
EXPECTED = {"true": b"", "echo": b"exec-bench\n", "stdin": PAYLOAD}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--execs", choices=("no", "yes", "only"), default="yes",
                        help="docker exec round trips (only: nothing else)")
    parser.add_argument("--exec-runs", type=int, default=30, help="timed rounds per engine")
    parser.add_argument("--exec-warmup", type=int, default=3, help="untimed rounds first")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.exec_runs < 1 or args.exec_warmup < 0:
        parser.error("--exec-runs must be at least 1, --exec-warmup not negative")


@attrs.define
class Timing:
    ms: list[float] = attrs.field(factory=list)
    daemon_cpu_s: list[float] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)


def timed_exec(engine: Engine, argv: tuple[str, ...], stdin: bytes, expected: bytes
               ) -> tuple[float, float, str | None]:
    """(wall ms, daemon CPU s, error) of one docker CLI exec; its output is checked."""
    env = engine.env
    cpu_before = daemon_cpu(engine)
    started = time.perf_counter()
    try:
        result = subprocess.run([DOCKER_CLI, *argv], env=env, input=stdin, capture_output=True,
                                timeout=CLI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return (time.perf_counter() - started) * 1000, 0.0, f"timed out after {CLI_TIMEOUT:.0f} s"
    elapsed = (time.perf_counter() - started) * 1000
    cpu = daemon_cpu(engine) - cpu_before
    if result.returncode != 0:
        return elapsed, cpu, f"exit {result.returncode}: {result.stderr.decode()[-300:]}"
    if result.stdout != expected:
        return elapsed, cpu, f"wrong output: {len(result.stdout)} bytes, {result.stdout[:60]!r}"
    return elapsed, cpu, None


def measure(engines: list[Engine], runs: int, warmup: int) -> dict[str, dict[str, Timing]]:
    timings = {key: {e.name: Timing() for e in engines} for key, *_ in MEASURES}
    for i in range(warmup + runs):
        if i % 10 == 0 or i == warmup:
            progress(f"exec {'warm-up' if i < warmup else 'round'} {i + 1}")
        for key, _title, argv, stdin in MEASURES:
            for engine in rotated(engines, i):
                ms, cpu, error = timed_exec(engine, argv, stdin, EXPECTED[key])
                if i < warmup:
                    continue
                timing = timings[key][engine.name]
                if error is None:
                    timing.ms.append(ms)
                    timing.daemon_cpu_s.append(cpu)
                else:
                    timing.errors.append(error)
    return timings


def _docker(engine: Engine, *args: str) -> None:
    result = subprocess.run([DOCKER_CLI, *args], env=engine.env, capture_output=True, text=True,
                            timeout=CLI_TIMEOUT, check=False)
    if result.returncode != 0:
        raise EngineError(f"{engine.name}: docker {' '.join(args)}: {result.stderr.strip()[-300:]}")


def run(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Start the container on every engine, measure, remove it; figures to result["execs"]."""
    started: list[Engine] = []
    try:
        for engine in engines:
            _docker(engine, "run", "-d", "--name", CONTAINER, *engine.run_args, "busybox",
                    "sleep", "3600")
            started.append(engine)
        timings = measure(engines, args.exec_runs, args.exec_warmup)
    finally:
        for engine in started:
            with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                _docker(engine, "rm", "-f", CONTAINER)
    if args.execs == "only":
        result["notes"].append("--execs only: no other measures were taken.")
    result["execs"] = to_json(timings, args)


def to_json(timings: dict[str, dict[str, Timing]], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": args.exec_runs, "warmup": args.exec_warmup, "measures": {}}
    for key, title, argv, _ in MEASURES:
        engines = {}
        for name, t in timings[key].items():
            # the mean: one exec is about one 10 ms clock tick, so a median says little
            cpu = t.daemon_cpu_s
            engines[name] = {**summary(t.ms), "errors": t.errors,
                             "daemon_cpu_ms_mean": round(sum(cpu) / len(cpu) * 1000, 1) if cpu else None}
        mine = engines.get("moord", {}).get("median_ms")
        ratios = {f"moord/{name}": report.ratio(mine, e.get("median_ms"))
                  for name, e in engines.items() if name != "moord"}
        out["measures"][key] = {"title": title, "argv": ["docker", *argv], "engines": engines,
                                "ratios": ratios}
    return out


def markdown(result: dict[str, Any]) -> str:
    """The exec section of the report (empty if it did not run)."""
    execs = result.get("execs")
    if not execs:
        return ""
    lines = [
        "### docker exec round trips",
        "",
        f"One `busybox sleep 3600` container per engine; {execs['runs']} rounds after "
        f"{execs['warmup']} untimed, engines taking turns. Wall time of the whole docker CLI "
        "invocation; daemon CPU: the daemon's process tree, mean per exec (the clock ticks every 10 ms).",
        "",
        "| measure | engine | n | median ms | min-max ms | p90 ms | daemon CPU ms (mean) | moord/engine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in execs["measures"].values():
        first = True
        for name, e in m["engines"].items():
            rel = "—" if name == "moord" else report.fmt_ratio(m["ratios"].get(f"moord/{name}"))
            failed = f", {len(e['errors'])} failed" if e.get("errors") else ""
            spread = f"{report.fmt_ms(e.get('min_ms'))}{report.DASH}{report.fmt_ms(e.get('max_ms'))}"
            cpu = e.get("daemon_cpu_ms_mean")
            lines.append(f"| {m['title'] if first else ''} | {name} | {e.get('n', 0)}{failed} | "
                         f"{report.fmt_ms(e.get('median_ms'))} | {spread} | "
                         f"{report.fmt_ms(e.get('p90_ms'))} | {'—' if cpu is None else cpu} | {rel} |")
            first = False
    lines.append("")
    for m in execs["measures"].values():
        for name, e in m["engines"].items():
            if e.get("errors"):
                lines.append(f"- {name}, {m['title']}: {len(e['errors'])} failed; first: {e['errors'][0]}")
    return "\n".join([*lines, ""]) + "\n"
