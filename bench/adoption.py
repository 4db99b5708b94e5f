"""Adoption time: how long a daemon killed with SIGKILL takes, once started again, to report
every container it left running as running.

N containers (`docker run -d --network none busybox sleep 3600`) run; the daemon is killed
with SIGKILL (its containers keep running: they have their own monitors); it is started
again, and `GET /containers/json` is polled on its socket every few milliseconds from the
moment its process starts until all N are listed as running. The same N container
processes must be there afterwards (adopted, not restarted).

- moord: its conmons survive by design; the new moord re-adopts them in `recovery.py`.
- dockerd needs `--live-restore` (without it, dockerd kills the running containers when
  it starts). Its managed containerd (`--containerd` not given) is killed with it
  (containerd runs with a parent-death signal), the containerd-shims and containers
  survive; the new dockerd starts a new containerd, which reconnects to the shims, then
  restores the containers. So the figure is dockerd's and containerd's restart together,
  the counterpart of moord's (one process). This dockerd gets `--bridge none
  --iptables=false` so that it does not share docker0 and iptables with the benchmark's
  main dockerd; the containers use `--network none` on every engine.
- Podman has no daemon that holds containers: nothing to adopt, not applicable.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs, report
from bench.engines import Dockerd, Engine, EngineError, Moord
from bench.measures import progress, summary

COMMAND = ("--network", "none", "busybox", "sleep", "3600")
POLL = 0.005
ADOPT_TIMEOUT = 300.0
REAP_TIMEOUT = 30.0
REPEATS = 5  # kill/restart cycles over the same containers


class AdoptMoord(Moord):
    """A moord of its own for this measure, fresh like the dockerd it is compared with."""

    name = "moord-adopt"


class LiveRestoreDockerd(Dockerd):
    """dockerd with --live-restore, off the main dockerd's docker0 and iptables."""

    name = "dockerd-live-restore"
    default_network = "none (--bridge none)"

    def clash(self) -> str | None:
        if self.SYSTEM_CONTAINERD.exists():
            return f"{self.SYSTEM_CONTAINERD} exists: dockerd would use that containerd"
        return None

    def argv(self) -> list[str]:
        return [*super().argv(), "--live-restore", "--bridge", "none", "--iptables=false"]


class KeptContainerdDockerd(LiveRestoreDockerd):
    """dockerd with --live-restore on a containerd of its own that outlives it.

    Only dockerd is killed and restarted: its own restart and restore, without containerd's.
    """

    name = "dockerd-kept-containerd"
    CONTAINERD = "/usr/bin/containerd"
    containerd: subprocess.Popen[bytes] | None = None

    @classmethod
    def installed(cls) -> bool:
        return super().installed() and os.access(cls.CONTAINERD, os.X_OK)

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    def containerd_config(self) -> Path:
        config = self.root / "containerd.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root / "containerd-root"}"\n'
            f'state = "{self.root / "containerd-state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.containerd_socket}"\n'
            f'[ttrpc]\n  address = "{self.containerd_socket}.ttrpc"\n'
            f'[debug]\n  address = "{self.root / "containerd-debug.sock"}"\n')
        return config

    def start(self) -> None:
        if self.containerd is None:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / "containerd.log", "ab") as log:
                self.containerd = subprocess.Popen(
                    [self.CONTAINERD, "--config", str(self.containerd_config())],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root,
                    env=self.daemon_env(), start_new_session=True)
            deadline = time.monotonic() + self.start_timeout
            while not self.containerd_socket.exists():
                if self.containerd.poll() is not None or time.monotonic() > deadline:
                    raise EngineError(f"containerd did not start (see {self.root / 'containerd.log'})")
                time.sleep(0.05)
        super().start()

    def argv(self) -> list[str]:
        return [*super().argv(), "--containerd", str(self.containerd_socket)]

    def stop(self, timeout: float = 60.0) -> str:
        said = super().stop(timeout)
        if self.containerd is not None and self.containerd.poll() is None:
            self.containerd.terminate()
            try:
                self.containerd.wait(timeout)
            except subprocess.TimeoutExpired:
                self.containerd.kill()
                self.containerd.wait()
        return said


PEERS: dict[str, tuple[type[Engine], ...]] = {
    "moord": (AdoptMoord,),
    "dockerd": (LiveRestoreDockerd, KeptContainerdDockerd),
}


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.path))
        self.sock = sock


def running_ids(sock_path: Path) -> set[str] | None:
    """IDs `GET /containers/json` lists as running; None while the API does not answer."""
    conn = UnixHTTP(sock_path, timeout=5)
    try:
        conn.request("GET", "/containers/json")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        return {str(c["Id"]) for c in json.loads(body) if c.get("State") == "running"}
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


@dataclass
class Adoption:
    """One engine's adoption runs: the same containers, the daemon killed and restarted each time."""

    count: int = 0
    started: int = 0
    api_ms: list[float] = field(default_factory=list)  # process start → /containers/json answers
    all_running_ms: list[float] = field(default_factory=list)  # ... → all `count` listed running
    same_processes: list[bool] = field(default_factory=list)
    survivors_while_down: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def start_containers(engine: Engine, count: int) -> list[str]:
    ids = []
    for i in range(count):
        if i % 25 == 0:
            progress(f"adoption: {engine.name}: containers {i + 1}-{min(i + 25, count)}/{count}")
        ids.append(engine.docker("run", "-d", *engine.run_args, *COMMAND).stdout.strip())
    return ids


def container_pids(engine: Engine, ids: list[str]) -> dict[str, int]:
    out = engine.docker("inspect", "--format", "{{.Id}} {{.State.Pid}}", *ids).stdout
    pairs = (line.split() for line in out.splitlines() if line.strip())
    return {cid: int(pid) for cid, pid in pairs}


def kill_hard(engine: Engine) -> list[str]:
    """SIGKILL the daemon; wait until the helpers it had are gone (dead and reaped).

    dockerd's managed containerd dies with it (parent-death signal), but not at the same
    instant, and the new dockerd takes a containerd of its pidfile that kill(pid, 0) still
    finds (alive or a zombie) for a live one, then times out waiting for its socket. On
    this host init reaps orphans only every second or so. So the restart waits until every
    process that was the daemon's descendant is gone: a real init reaps at once, and the
    timed restart starts from the state a quick restart would find on a normal host.
    """
    assert engine.proc is not None
    helpers = [p.pid for p in procs.descendants(engine.proc.pid)]
    engine.proc.send_signal(signal.SIGKILL)
    engine.proc.wait()
    deadline = time.monotonic() + REAP_TIMEOUT
    left = helpers
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if procs.read_proc(pid) is not None]
    if left:
        return [f"{engine.name}: helpers {left} still there {REAP_TIMEOUT:.0f} s after the kill"]
    return []


def relaunch(engine: Engine, ids: set[str], result: Adoption) -> None:
    """Start the daemon process again and poll until every container in `ids` runs."""
    started = time.perf_counter()
    engine.launch()
    assert engine.proc is not None
    answered = False
    while time.perf_counter() - started < ADOPT_TIMEOUT:
        if engine.proc.poll() is not None:
            raise EngineError(f"exited with {engine.proc.returncode}: {engine.log_tail()}")
        running = running_ids(engine.socket_path)
        # taken when the answer is in: a daemon may accept connections before it serves them
        elapsed_ms = (time.perf_counter() - started) * 1000
        if running is not None and not answered:
            answered = True
            result.api_ms.append(elapsed_ms)
        if running is not None and ids <= running:
            result.all_running_ms.append(elapsed_ms)
            return
        time.sleep(POLL)
    raise EngineError(f"not all {len(ids)} containers running {ADOPT_TIMEOUT:.0f} s after the restart")


def measure_one(engine: Engine, count: int, repeats: int) -> Adoption:
    """Start `count` containers; `repeats` times kill the daemon hard and time its restart."""
    result = Adoption(count=count)
    ids = start_containers(engine, count)
    result.started = len(ids)
    before = container_pids(engine, ids)
    for i in range(repeats):
        progress(f"adoption: SIGKILL of {engine.name} and start again ({i + 1}/{repeats})")
        result.notes += kill_hard(engine)
        result.survivors_while_down.append(sum(1 for pid in before.values() if _alive(pid)))
        relaunch(engine, set(ids), result)
        result.same_processes.append(container_pids(engine, ids) == before)
    engine.remove_all_containers()  # the next engine's restart gets the machine to itself
    return result


def _alive(pid: int) -> bool:
    proc = procs.read_proc(pid) if pid > 0 else None
    return proc is not None and proc.state != "Z"


def measure(engines: list[Engine], count: int, repeats: int = REPEATS) -> dict[str, Adoption]:
    """Each engine in turn (they are not interleaved: each restart must have the machine)."""
    results: dict[str, Adoption] = {}
    for engine in engines:
        try:
            results[engine.name] = measure_one(engine, count, repeats)
        except (EngineError, subprocess.TimeoutExpired, OSError) as e:
            results[engine.name] = Adoption(count=count, error=str(e)[-400:])
    return results


def to_json(results: dict[str, Adoption], podman: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"command": ["run", "-d", *COMMAND], "results": {}, "ratios": {}}
    for name, r in results.items():
        out["results"][name] = {
            "count": r.count, "started": r.started,
            "api": summary(r.api_ms), "all_running": summary(r.all_running_ms),
            "samples_ms": [round(x, 1) for x in r.all_running_ms],
            "survivors_while_down": r.survivors_while_down, "same_processes": r.same_processes,
            "notes": r.notes, "error": r.error,
        }
    if podman:
        out["results"]["podman"] = {"not_applicable": podman}
    moord = out["results"].get(AdoptMoord.name, {}).get("all_running", {}).get("median_ms")
    for name, r in out["results"].items():
        if name != AdoptMoord.name and "all_running" in r:
            out["ratios"][f"moord/{name}"] = report.ratio(moord, r["all_running"].get("median_ms"))
    return out


def markdown(section: dict[str, Any]) -> list[str]:
    """The adoption table."""
    lines = [f"Adoption after SIGKILL: N {report.TIMES} `docker run -d --network none busybox sleep 3600`; "
             "the daemon killed with SIGKILL and started again, several times over the same containers; "
             "time from the new daemon process's start to its API answering, and to all N listed as "
             "running by `GET /containers/json`.", "",
             "| engine | N | restarts | survived each kill | API answers, median ms | "
             f"all N running, median ms (min{report.DASH}max) | same processes | moord/engine |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in section["results"].items():
        if "not_applicable" in r:
            lines.append(f"| {name} | — | — | — | — | n/a: {r['not_applicable']} | — | — |")
            continue
        if r.get("error"):
            lines.append(f"| {name} | {r['count']} | — | — | — | failed: {r['error']} | — | — |")
            continue
        ratio = section["ratios"].get(f"moord/{name}")
        rel = "—" if name == AdoptMoord.name else report.fmt_ratio(ratio)
        every = r["all_running"]
        survived = "all" if all(n == r["started"] for n in r["survivors_while_down"]) else str(
            r["survivors_while_down"])
        same = "yes" if all(r["same_processes"]) else f"NO {r['same_processes']}"
        spread = f"{report.fmt_ms(every.get('min_ms'))}{report.DASH}{report.fmt_ms(every.get('max_ms'))}"
        lines.append(f"| {name} | {r['started']} | {every.get('n', 0)} | {survived} | "
                     f"{report.fmt_ms(r['api'].get('median_ms'))} | "
                     f"{report.fmt_ms(every.get('median_ms'))} ({spread}) | {same} | {rel} |")
    notes = [n for r in section["results"].values() for n in r.get("notes", [])]
    return [*lines, *(f"- {n}" for n in notes), ""]


def podman_note() -> str:
    return ("Podman has no daemon holding containers: conmon monitors each one and the state is in "
            "Podman's database, read by every podman command; a restarted API service adopts nothing")
