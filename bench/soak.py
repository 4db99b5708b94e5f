"""A bounded soak of moord alone: leaks and lost lines under crash loops, rotating logs,
followers, execs and stats streams, with moord SIGKILLed or restarted every few minutes.

Run as root from the repository:

    .venv/bin/python -m bench.soak [--minutes 30] [--restart-every 3] [--out DIR]

It is not a comparison with other engines. The moord is private (own data root, socket,
cgroup parent, network prefix, all under one /tmp/moorage-soak-* directory). Every
`--sample-every` seconds moord's RSS, open fds, threads and the containers and processes
it has are sampled; at the end everything the soak made is removed and what is left is
diffed against a snapshot taken before the load. Curves, summary and leaks go to
bench/results/soak-<UTC>/ (samples.csv, report.txt, summary.json, moord.log).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import adoption, hoststate, soak_leaks, soak_report
from bench.engines import Engine, EngineError, Moord
from bench.measures import progress
from bench.run_bench import RESULTS, make_rootfs, preflight, tear_down
from bench.soak_analysis import leak_diff, parse_line
from bench.soak_load import ExecLoop, Follower, StatsStream, Worker, chatty_script
from bench.soak_load import Moord as DaemonState

SETTLE_TIMEOUT = 60.0  # after removing everything: how long moord may take to clean up


class SoakMoord(Moord):
    """moord with a cgroup parent of its own: the soak's cgroup leak check looks only there."""

    name = "moord-soak"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        # its own, like the network prefix: two soaks at once never share a cgroup
        self.cgroup_parent = "moorage-soak-" + self.network_prefix[2:]


@dataclass
class Sample:
    t_s: float
    utc: str
    pid: int
    rss_kb: int
    fds: int
    threads: int
    containers: int
    running: int
    conmon: int
    crun: int
    other_procs: int
    lines_followed: int
    lost: int
    execs_ok: int
    stats_frames: int
    rotations_seen: int
    event: str = ""


@dataclass
class Restart:
    at_s: float
    how: str  # "kill" (SIGKILL) or "term" (SIGTERM, then start)
    old_pid: int
    new_pid: int
    down_s: float
    adopted: int
    not_adopted: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    parser.add_argument("--restart-every", type=float, default=3.0,
                        help="minutes between moord restarts, SIGKILL and SIGTERM+start "
                             "alternately (0: none)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--crashers", type=int, default=3,
                        help="restart-always containers that exit 1 after 2 s (one publishes a port)")
    parser.add_argument("--chatty", type=int, default=3,
                        help="containers writing numbered lines, each followed")
    parser.add_argument("--line-rate", type=int, default=200, help="lines a second per chatty container")
    parser.add_argument("--line-pad", type=int, default=40, help="padding characters per line")
    parser.add_argument("--log-max-size", default="100k",
                        help="--log-opt max-size of the chatty containers")
    parser.add_argument("--log-max-file", type=int, default=4,
                        help="--log-opt max-file of the chatty containers")
    parser.add_argument("--exec-loops", type=int, default=2,
                        help="threads running `docker exec C true` in a loop")
    parser.add_argument("--stats-streams", type=int, default=2, help="streaming stats connections")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default bench/results/soak-<UTC>)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_every <= 0 or args.restart_every < 0:
        parser.error("--minutes and --sample-every must be positive, --restart-every not negative")
    if args.chatty < 1 or min(args.crashers, args.exec_loops, args.stats_streams) < 0:
        parser.error("--chatty must be at least 1; --crashers, --exec-loops, --stats-streams not negative")
    if args.line_rate < 10 or args.log_max_file < 2:
        parser.error("--line-rate must be at least 10 and --log-max-file at least 2 "
                     "(rotation must keep a file)")
    return args


def proc_status(pid: int) -> tuple[int, int, int]:
    """(VmRSS kB, open fds, threads) of a process; zeros once it is gone."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "Threads"):
                    values[key] = int(rest.split()[0])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return 0, 0, 0
    return values.get("VmRSS", 0), fds, values.get("Threads", 0)


def listed(engine: Engine) -> tuple[int, int]:
    """(containers, running) as `GET /containers/json?all=1` lists them; (-1, -1) if no answer."""
    conn = adoption.UnixHTTP(engine.socket_path, timeout=30)
    try:
        conn.request("GET", "/containers/json?all=1")
        response = conn.getresponse()
        body = json.loads(response.read())
        return len(body), sum(1 for c in body if c.get("State") == "running")
    except (OSError, http.client.HTTPException, ValueError):
        return -1, -1
    finally:
        conn.close()


class Soak:
    """One run: the moord, its load, the samples and the restarts."""

    def __init__(self, args: argparse.Namespace, run_root: Path) -> None:
        self.args = args
        self.run_root = run_root
        self.engine = SoakMoord(run_root / "moord")
        self.daemon = DaemonState()
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.samples: list[Sample] = []
        self.restarts: list[Restart] = []
        self.chatty: list[str] = []
        self.crashers: list[str] = []
        self.followers: list[Follower] = []
        self.workers: list[Worker] = []
        self.notes: list[str] = []
        self.log_inodes: dict[str, int] = {}  # chatty container's live log file → its inode
        self.rotations_seen = 0

    @property
    def pid(self) -> int:
        assert self.engine.proc is not None
        return self.engine.proc.pid

    @property
    def data_root(self) -> Path:
        return self.engine.root / "data"

    def leak_snapshot(self) -> dict[str, set[str]]:
        return soak_leaks.snapshot(self.run_root, self.data_root, self.engine.cgroup_parent,
                                   self.engine.network_prefix, self.pid)

    # --- load ---------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """One container through what the load does (default network, a published port,
        rotating log options, an exec), removed again: moord makes some state of its own
        lazily, once, for all containers (the conmon cgroup `<parent>/conmon`, its nftables
        chains), and the leak baseline is taken after that."""
        cid = self.engine.docker("run", "-d", "-p", "127.0.0.1::80", "--log-opt", "max-size=1m",
                                 "--log-opt", "max-file=2", "busybox", "sleep", "60").stdout.strip()
        self.engine.docker("exec", cid, "true")
        self.engine.docker("rm", "-f", cid)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while any(soak_leaks.process_counts(self.run_root, self.pid).values()):
            if time.monotonic() > deadline:
                raise EngineError("the warm-up container's processes are still there after its removal")
            time.sleep(0.5)

    def start_containers(self) -> None:
        a = self.args
        for i in range(a.crashers):
            ports = ["-p", "127.0.0.1::80"] if i == 0 else []
            self.crashers.append(self.engine.docker(
                "run", "-d", "--name", f"crasher{i}", "--restart", "always", *ports,
                "busybox", "sh", "-c", "sleep 2; exit 1").stdout.strip())
        script = chatty_script(a.line_rate, a.line_pad)
        for i in range(a.chatty):
            self.chatty.append(self.engine.docker(
                "run", "-d", "--name", f"chatty{i}", "--log-opt", f"max-size={a.log_max_size}",
                "--log-opt", f"max-file={a.log_max_file}", "busybox", "sh", "-c", script).stdout.strip())

    def watch_logs(self) -> None:
        out = self.engine.docker("inspect", "--format", "{{.LogPath}}", *self.chatty).stdout
        self.log_inodes = {path: 0 for path in out.split()}
        self.count_rotations()

    def count_rotations(self) -> None:
        """A rotation gives the live log file a new inode: count the changes seen between
        samples (a lower bound: two rotations between samples count once)."""
        for path, old in self.log_inodes.items():
            try:
                inode = os.stat(path).st_ino
            except OSError:
                continue
            if old and inode != old:
                self.rotations_seen += 1
            self.log_inodes[path] = inode

    def start_workers(self) -> None:
        for i, cid in enumerate(self.chatty):
            follower = Follower(f"follow{i}", self.engine, self.daemon, self.stop, container=cid)
            self.followers.append(follower)
            self.workers.append(follower)
        for i in range(self.args.exec_loops):
            self.workers.append(ExecLoop(f"exec{i}", self.engine, self.daemon, self.stop,
                                         container=self.chatty[i % len(self.chatty)]))
        for i in range(self.args.stats_streams):
            self.workers.append(StatsStream(f"stats{i}", self.engine, self.daemon, self.stop,
                                            container=self.chatty[i % len(self.chatty)]))
        for worker in self.workers:
            worker.start()

    def container_pids(self) -> dict[str, int]:
        out = self.engine.docker("inspect", "--format", "{{.Name}} {{.State.Pid}}", *self.chatty).stdout
        pairs = (line.split() for line in out.splitlines() if line)
        return {name.lstrip("/"): int(pid) for name, pid in pairs}

    # --- sampling and restarts ------------------------------------------------------------------

    def sample(self, event: str = "") -> Sample:
        pid = self.pid
        rss, fds, threads = proc_status(pid)
        containers, running = listed(self.engine)
        counts = soak_leaks.process_counts(self.run_root, pid)
        self.count_rotations()
        s = Sample(
            t_s=round(time.monotonic() - self.started, 1),
            utc=datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S"),
            pid=pid, rss_kb=rss, fds=fds, threads=threads, containers=containers, running=running,
            conmon=counts["conmon"], crun=counts["crun"], other_procs=counts["other"],
            lines_followed=sum(f.check.received for f in self.followers),
            lost=sum(f.check.lost for f in self.followers),
            execs_ok=sum(w.ok for w in self.workers if isinstance(w, ExecLoop)),
            stats_frames=sum(w.frames for w in self.workers if isinstance(w, StatsStream)),
            rotations_seen=self.rotations_seen, event=event)
        self.samples.append(s)
        return s

    def restart(self, how: str) -> Restart:
        """SIGKILL (waiting until moord's helpers are reaped) or SIGTERM, then start again;
        the chatty containers must be the same processes afterwards (re-adopted)."""
        before = self.container_pids()
        old = self.pid
        at = time.monotonic() - self.started
        self.daemon.down.set()
        t0 = time.monotonic()
        if how == "kill":
            self.notes += adoption.kill_hard(self.engine)
        else:
            assert self.engine.proc is not None
            self.engine.proc.send_signal(signal.SIGTERM)
            try:
                self.engine.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.notes.append(f"moord[{old}] did not stop within 60 s of SIGTERM: killed")
                self.engine.proc.kill()
                self.engine.proc.wait()
        self.engine.start()
        down = time.monotonic() - t0
        self.daemon.down.clear()
        after = self.container_pids()
        moved = [f"{n} ({before[n]} -> {after.get(n)})" for n in before if after.get(n) != before[n]]
        record = Restart(round(at, 1), how, old, self.pid, round(down, 2), len(before) - len(moved), moved)
        self.restarts.append(record)
        progress(f"soak: {how} of moord[{old}] -> moord[{self.pid}], down {down:.1f} s, "
                 f"{record.adopted}/{len(before)} chatty containers re-adopted")
        return record

    def run_load(self) -> None:
        a = self.args
        end = self.started + a.minutes * 60
        every = a.restart_every * 60
        next_restart = self.started + every if every else float("inf")
        next_sample = time.monotonic()
        kinds = ("kill", "term")
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_restart:
                how = kinds[len(self.restarts) % 2]
                self.restart(how)
                self.sample(event=how)
                next_restart += every
                continue
            if now >= next_sample:
                s = self.sample()
                next_sample += a.sample_every
                if len(self.samples) % 6 == 1:
                    progress(f"soak: {s.t_s / 60:.1f} min, moord[{s.pid}] rss {s.rss_kb} kB, fds {s.fds}, "
                             f"lines {s.lines_followed}, lost {s.lost}, execs {s.execs_ok}")
                continue
            time.sleep(max(0.0, min(next_sample, next_restart, end) - now))
        self.sample(event="end")

    # --- the end ------------------------------------------------------------------------------

    def finish_load(self) -> dict[str, Any]:
        """Stop the workers, stop the chatty containers and let the followers read to their
        end; the lines each container wrote come from its log's last line."""
        self.stop.set()
        for worker in self.workers:
            if not isinstance(worker, Follower) and worker.thread is not None:
                worker.thread.join(90)
        for follower in self.followers:
            follower.finishing.set()
        self.engine.docker("kill", *self.chatty)
        last_written: dict[str, int | None] = {}
        for follower in self.followers:
            if follower.thread is not None:
                follower.thread.join(300)
                if follower.thread.is_alive():
                    self.notes.append(f"{follower.name} did not finish reading within 300 s")
            tail = self.engine.docker("logs", "--timestamps", "--tail", "1", follower.container).stdout
            parsed = parse_line(tail.strip().splitlines()[-1]) if tail.strip() else None
            last_written[follower.name] = parsed[1] if parsed else None
            follower.check.finish(last_written[follower.name])
        restarts = self.engine.docker("inspect", "--format", "{{.Name}} {{.RestartCount}}",
                                      *self.crashers).stdout
        return {"last_written": last_written,
                "crasher_restart_counts": dict(line.split() for line in restarts.splitlines() if line)}

    def settle(self, before: dict[str, set[str]]) -> tuple[dict[str, list[str]], float]:
        """Remove every container, then wait (up to SETTLE_TIMEOUT) until nothing is left
        that was not there before; what is still there then is a leak."""
        removed = self.engine.remove_all_containers()
        progress(f"soak: removed {removed} containers; waiting for moord to clean up")
        t0 = time.monotonic()
        while True:
            leaks = leak_diff(before, self.leak_snapshot())
            waited = time.monotonic() - t0
            if not leaks or waited > SETTLE_TIMEOUT:
                return leaks, waited
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = preflight()
    if problems:
        print("cannot run the soak here:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out: Path = args.out or RESULTS / f"soak-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    out.mkdir(parents=True, exist_ok=True)
    run_root = Path(tempfile.mkdtemp(prefix="moorage-soak-", dir="/tmp"))
    host_before = hoststate.take()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    soak = Soak(args, run_root)
    command = ["python -m bench.soak", *(sys.argv[1:] if argv is None else argv)]
    result: dict[str, Any] = {"started_at": stamp.isoformat(timespec="seconds"),
                              "command": " ".join(command),
                              "args": {k: str(v) for k, v in vars(args).items()},
                              "load_before": list(os.getloadavg())}
    interrupted = False
    try:
        progress("soak: starting moord")
        soak.engine.start()
        soak.engine.import_busybox(make_rootfs(run_root))
        soak.warm_up()
        before = soak.leak_snapshot()
        result["snapshot_before"] = soak_leaks.summary_counts(before)
        soak.start_containers()
        soak.watch_logs()
        soak.start_workers()
        soak.started = time.monotonic()
        progress(f"soak: load running for {args.minutes:g} min")
        soak.run_load()
        result.update(soak.finish_load())
        leaks, waited = soak.settle(before)
        result["leaks"] = leaks
        result["settle_s"] = round(waited, 1)
    except (EngineError, subprocess.TimeoutExpired) as e:
        result["error"] = str(e)
    except KeyboardInterrupt:
        interrupted = True
        result["error"] = "interrupted"
    finally:
        soak.stop.set()
        for follower in soak.followers:
            follower.finishing.set()
        progress("soak: tearing down")
        result["cleanup"] = tear_down([soak.engine], run_root, host_before, out,
                                      own_cgroups=(soak.engine.cgroup_parent,))
        result["load_after"] = list(os.getloadavg())
    result["samples"] = [asdict(s) for s in soak.samples]
    result["restarts"] = [asdict(r) for r in soak.restarts]
    result["workers"] = soak_report.workers_json(soak.workers)
    result["notes"] = soak.notes
    result["moord_log_problems"] = soak_report.log_problems(out / f"{soak.engine.name}.log")
    soak_report.write(out, result)
    print(soak_report.summary_text(result))
    print(f"results: {out}/ (report.txt, samples.csv, summary.json, {soak.engine.name}.log)")
    return 130 if interrupted else (1 if result.get("error") else 0)


if __name__ == "__main__":
    sys.exit(main())
