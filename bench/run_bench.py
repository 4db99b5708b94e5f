"""moord beside dockerd and Podman in one run: `docker run --rm busybox true`, medians, ratios.

Run as root from the repository:

    .venv/bin/python bench/run_bench.py [--runs N] [--engines moord,dockerd,podman] [--out FILE]
        [--net|--logs|--images|--builds no|yes|only]

Each engine is started here with a private data root and socket under one temporary
directory, gets the same busybox root filesystem through `docker import`, and is measured
through the stock docker CLI. At the end every engine is stopped and whatever it left
(containers, mounts, processes, docker0 and iptables rules, files in /run) is removed.
This is a report, not a test: nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `engine` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import (
    adoption,
    build_measures,
    exec_measures,
    hoststate,
    image_measures,
    log_measures,
    measures,
    net_measures,
    procs,
    report,
    restarts,
    start_order,
)
from bench.engines import (
    DOCKER_CLI,
    ENGINES,
    MOORD_CGROUP_PARENT,
    REPO,
    Engine,
    EngineError,
    describe_version,
)

RESULTS = REPO / "bench" / "results"
BUSYBOX = "/usr/bin/busybox"
SECTIONS = ("logs", "net", "images", "builds", "execs")  # the measures with a `--KIND no|yes|only` option


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per engine and measure")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first, per engine and measure")
    parser.add_argument("--engines", default="moord,dockerd,podman",
                        help="comma-separated; moord is always measured")
    parser.add_argument("--detached", type=int, default=50,
                        help="detached containers per engine for the memory and stop measures (0: skip)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default bench/results/<timestamp>.json)")
    parser.add_argument("--restarts", type=int, default=20,
                        help="restarts per engine for the restart-delay measure (0: skip)")
    parser.add_argument("--adopt", type=int, default=100,
                        help="running containers for the adoption-after-SIGKILL measure (0: skip)")
    parser.add_argument("--ordered", type=int, default=50,
                        help="containers per shape for the start-order measure, moord only (0: skip)")
    log_measures.add_arguments(parser)
    net_measures.add_arguments(parser)
    image_measures.add_arguments(parser)
    build_measures.add_arguments(parser)
    exec_measures.add_arguments(parser)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {list(ENGINES)}")
    args.engine_names = ["moord", *[n for n in dict.fromkeys(names) if n != "moord"]]
    if args.runs < 1 or min(args.warmup, args.detached, args.restarts, args.adopt, args.ordered) < 0:
        parser.error("--runs must be at least 1, --warmup, --detached, --restarts, --adopt and --ordered "
                     "not negative")
    onlies = [f"--{kind} only" for kind in SECTIONS if getattr(args, kind) == "only"]
    if len(onlies) > 1:
        parser.error(f"{' and '.join(onlies)} exclude each other")
    image_measures.check_arguments(parser, args)
    build_measures.check_arguments(parser, args)
    exec_measures.check_arguments(parser, args)
    if args.net_fetches < 3 or args.net_requests < 1:
        parser.error("--net-fetches must be at least 3, --net-requests at least 1")
    return args


def wanted(args: argparse.Namespace, kind: str | None) -> bool:
    """Whether a section runs: its own `only`, or `yes` when no section is `only`
    (kind None: the run, detached and supervision measures, which have no option)."""
    only = [k for k in SECTIONS if getattr(args, k) == "only"]
    if kind is None:
        return not only
    return only == [kind] or (not only and getattr(args, kind) == "yes")


def preflight() -> list[str]:
    """Why this host can't run the benchmark at all (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root: the engines mount overlayfs and run containers")
    if not os.access(DOCKER_CLI, os.X_OK):
        problems.append(f"{DOCKER_CLI} (the docker CLI used as the client) is missing")
    if not os.access(BUSYBOX, os.X_OK):
        problems.append(f"{BUSYBOX} (busybox-static, the image's only binary) is missing")
    return problems


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def make_rootfs(root: Path) -> Path:
    """The busybox root filesystem tarball every engine imports, made once per run."""
    tarball = root / "busybox-rootfs.tar"
    subprocess.run([sys.executable, "-m", "engine.images.busybox_rootfs", str(tarball)], cwd=REPO,
                   check=True, capture_output=True)
    return tarball


def bring_up(engine: Engine, tarball: Path, info: dict[str, Any]) -> bool:
    """Start the engine, import busybox, ask its version; record why if any step fails."""
    clash = engine.clash()
    if clash:
        info["status"] = f"skipped: {clash}"
        return False
    measures.progress(f"starting {engine.name}")
    try:
        engine.start()
        engine.import_busybox(tarball)
        server = engine.version()
    except (EngineError, subprocess.TimeoutExpired, ValueError) as e:
        info["status"] = f"failed to start: {e}"
        return False
    info.update(status="measured", server=server, version=describe_version(server))
    return True


def engine_info(engine: Engine) -> dict[str, Any]:
    return {"status": "not started", "argv": engine.argv(), "run_args": list(engine.run_args),
            "default_network": engine.default_network}


def measure_all(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Warm-ups, then the detached batch (a fresh-ish daemon's memory), then the timed runs."""
    run_measures = [measures.RUN_NONE, measures.RUN_DEFAULT]
    measures.round_robin(engines, run_measures, runs=0, warmup=args.warmup)
    if args.detached:
        batches = measures.start_detached(engines, args.detached)
        for engine in engines:
            measures.progress(f"stop -t 0 of {len(batches[engine.name].ids)} on {engine.name}")
            measures.stop_detached(engine, batches[engine.name])
        result["detached"] = {name: detached_json(b) for name, b in batches.items()}
    timings = measures.round_robin(engines, run_measures, runs=args.runs, warmup=0)
    result["measures"] = [measure_json(m, timings[m.key]) for m in run_measures]


class Extras:
    """Engines started for one measure only (a moord with other flags, a dockerd with
    --live-restore): own directories, listed in the report, torn down with the others."""

    def __init__(self, run_root: Path, tarball: Path, started: list[Engine], result: dict[str, Any]) -> None:
        self.run_root, self.tarball, self.started, self.result = run_root, tarball, started, result

    def bring_up(self, cls: type[Engine]) -> Engine | None:
        engine = cls(self.run_root / cls.name)
        info = self.result["engines"][cls.name] = engine_info(engine)
        self.started.append(engine)
        return engine if bring_up(engine, self.tarball, info) else None

    def done(self, engine: Engine) -> None:
        self.result["notes"] += [n for n in _stop_engine(engine) if "removing" in n]


def measure_supervision(engines: list[Engine], args: argparse.Namespace, result: dict[str, Any],
                        extras: Extras) -> None:
    """Restart delay under --restart always, adoption of running containers after SIGKILL, then
    start order after a moord restart (moord only)."""
    if args.restarts:
        fast = extras.bring_up(restarts.FastMoord)
        measured = [*engines, *([fast] if fast else [])]
        gaps = restarts.measure(measured, args.restarts)
        result["restart_delay"] = restarts.to_json(measured, gaps)
        if fast:
            extras.done(fast)
    if args.adopt:
        names = {e.name for e in engines}
        results = {}
        for cls in (c for name, classes in adoption.PEERS.items() if name in names for c in classes):
            engine = extras.bring_up(cls) if cls.installed() else None
            if engine is not None:
                results.update(adoption.measure([engine], args.adopt))
                extras.done(engine)
        podman = adoption.podman_note() if "podman" in names else None
        result["adoption"] = adoption.to_json(results, podman)
    if args.ordered:
        ordered = extras.bring_up(start_order.OrderMoord)
        if ordered is not None:
            result["start_order"] = start_order.run(ordered, args.ordered)
            extras.done(ordered)


def measure_json(measure: measures.Measure, samples: dict[str, measures.Samples]) -> dict[str, Any]:
    results = {name: {**measures.summary(s.ms), "samples_ms": [round(x, 1) for x in s.ms],
                      "errors": s.errors} for name, s in samples.items()}
    moord = results.get("moord", {}).get("median_ms")
    ratios = {f"moord/{name}": report.ratio(moord, r.get("median_ms"))
              for name, r in results.items() if name != "moord"}
    argv = [*measure.options, "<engine's run flags>", *measure.image_and_command]
    return {"key": measure.key, "title": measure.title, "argv": argv, "results": results, "ratios": ratios}


def detached_json(batch: measures.Detached) -> dict[str, Any]:
    monitors = batch.monitors
    monitor: dict[str, Any] = {"count": len(monitors)}
    if monitors:
        monitor.update(comm=statistics.mode(m["comm"] for m in monitors),
                       median_rss_kb=statistics.median(m["rss_kb"] for m in monitors),
                       median_pss_kb=statistics.median(m["pss_kb"] for m in monitors),
                       each=monitors)
    return {
        "starts": {**measures.summary(batch.starts.ms), "samples_ms": [round(x, 1) for x in batch.starts.ms],
                   "errors": batch.starts.errors},
        "monitor": monitor,
        "daemon_idle": batch.daemon_idle,
        "daemon_busy": batch.daemon_busy,
        "stop_ms": None if batch.stop_ms is None else round(batch.stop_ms, 1),
        "stop_error": batch.stop_error,
    }


def tear_down(engines: list[Engine], run_root: Path, before: hoststate.HostState,
              logs_dir: Path, own_cgroups: tuple[str, ...] = (MOORD_CGROUP_PARENT,)) -> list[str]:
    """Remove containers, stop engines, then sweep what they left: processes, mounts, host state."""
    notes: list[str] = []
    for engine in engines:
        notes += _stop_engine(engine)
    _keep_logs(engines, logs_dir)
    time.sleep(0.5)  # let detached shims and conmons notice their containers are gone
    strays = procs.mentioning(str(run_root))
    if strays:
        procs.kill_all(strays)
        notes.append("killed leftover processes: " + ", ".join(f"{p.comm}[{p.pid}]" for p in strays))
    notes += procs.unmount_under(run_root)
    notes += hoststate.restore(before, own_cgroups=own_cgroups)
    shutil.rmtree(run_root, ignore_errors=True)
    notes += _verify_clean(run_root)
    return notes


def _keep_logs(engines: list[Engine], logs_dir: Path) -> None:
    """The daemons' logs outlive the run directory: they explain a failed or odd run."""
    for engine in engines:
        if engine.log_path.exists():
            logs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(engine.log_path, logs_dir / f"{engine.name}.log")


def _stop_engine(engine: Engine) -> list[str]:
    if engine.proc is None:
        return []
    notes = []
    if engine.proc.poll() is None:
        try:
            removed = engine.remove_all_containers()
            if removed:
                notes.append(f"{engine.name}: removed {removed} containers")
        except (EngineError, subprocess.TimeoutExpired) as e:
            notes.append(f"{engine.name}: removing containers failed: {e}")
    notes.append(f"{engine.name}: {engine.stop()}")
    return notes


def _verify_clean(run_root: Path) -> list[str]:
    """Say so if anything of this run is still there after the sweep."""
    problems = []
    if run_root.exists():
        problems.append(f"NOT CLEAN: {run_root} still exists")
    left = procs.mentioning(str(run_root))
    if left:
        problems.append("NOT CLEAN: still running: " + ", ".join(f"{p.comm}[{p.pid}]" for p in left))
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(run_root))]
    if mounts:
        problems.append(f"NOT CLEAN: still mounted: {mounts}")
    return problems


def base_result(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    cli = subprocess.run([DOCKER_CLI, "--version"], capture_output=True, text=True, check=False)
    command = [".venv/bin/python", "bench/run_bench.py", *(sys.argv[1:] if argv is None else argv)]
    return {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(command),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "docker_cli": cli.stdout.strip() or "unknown",
        "runs": args.runs,
        "warmup": args.warmup,
        "detached_count": args.detached,
        "load_before": list(os.getloadavg()),
        "engines": {},
        "measures": [],
        "detached": None,
        "restarts_per_engine": args.restarts,
        "adopt_count": args.adopt,
        "restart_delay": None,
        "adoption": None,
        "ordered_count": args.ordered,
        "start_order": None,
        "images": None,
        "builds": None,
        "notes": [],
    }


def standing_notes(result: dict[str, Any]) -> list[str]:
    """Caveats that belong next to every set of numbers from this benchmark."""
    notes = [f"{os.cpu_count()} CPUs: the engines, the docker CLI and the containers share them; "
             "other work on the machine shows up as noise (see the load averages)."]
    if result["engines"].get("podman", {}).get("status") == "measured":
        notes.append("podman only: every `run` passes `--ulimit nofile=20000:20000 --ulimit "
                     "nproc=32768:32768` (this host lacks CAP_SYS_RESOURCE; Podman's default "
                     "rlimits make crun fail without them).")
    notes.append("default network: every engine gives the container a veth pair on a bridge "
                 "(moord: its `bridge` network, nftables; dockerd: docker0, iptables; Podman: podman0, "
                 "netavark).")
    return notes


def default_out() -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return RESULTS / f"{stamp}.json"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = preflight()
    if problems:
        print("cannot run the benchmark here:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    result = base_result(args, argv)
    out: Path = args.out or default_out()
    logs_dir = out.parent / f"{out.stem}.logs"
    run_root = Path(tempfile.mkdtemp(prefix="moorage-bench-", dir="/tmp"))
    before = hoststate.take()
    signal.signal(signal.SIGTERM, _interrupt)
    started: list[Engine] = []
    interrupted = False
    try:
        tarball = make_rootfs(run_root)
        active = []
        for name in args.engine_names:
            engine = ENGINES[name](run_root / name)
            info = result["engines"][name] = engine_info(engine)
            if not engine.installed():
                info["status"] = "not installed"
                continue
            started.append(engine)
            if bring_up(engine, tarball, info):
                active.append(engine)
        others = bool(active) and wanted(args, None)
        if others:
            measure_all(active, args, result)
        # before the supervision measures: adoption's `dockerd --bridge none` deletes docker0
        if active and wanted(args, "net"):
            net_measures.run(active, args, result)
        if others:
            measure_supervision(active, args, result, Extras(run_root, tarball, started, result))
        if active and wanted(args, "logs"):
            log_measures.run(active, args, result)
        # near the end: nothing depends on it, and its 50 MB pulls stay out of the other measures
        if active and wanted(args, "images"):
            image_measures.run(active, args, result, run_root)
        # after the pulls: builds touch only busybox and leave nothing behind
        if active and wanted(args, "builds"):
            build_measures.run(active, args, result, run_root)
        if active and wanted(args, "execs"):
            exec_measures.run(active, args, result)
    except EngineError as e:
        result["notes"].append(f"measurements stopped early: {e}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        measures.progress("tearing down")
        result["cleanup"] = tear_down(started, run_root, before, logs_dir)
        result["load_after"] = list(os.getloadavg())
    if interrupted:
        print("interrupted; engines stopped and cleaned up:\n  "
              + "\n  ".join(report.condense(result["cleanup"])), file=sys.stderr)
        return 130
    result["notes"] = [*standing_notes(result), *result["notes"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(report.markdown(result))
    print(net_measures.markdown(result))
    print(log_measures.markdown(result))
    print(image_measures.markdown(result))
    print(build_measures.markdown(result))
    print(exec_measures.markdown(result))
    print(f"JSON: {out}; daemon logs: {logs_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
