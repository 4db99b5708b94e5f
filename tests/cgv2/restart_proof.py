"""Restarting moord under systemd loses no log line and no request to a published port.

Run as root on a systemd host where scripts/setup.sh started moord.service (the cgroup
v2 guest runs it: scripts/cgv2-guest.sh):

    .venv/bin/python -m tests.cgv2.restart_proof [--restarts N] [--port P]

Against the system's moord (its default socket) it starts two containers: one writes
numbered lines as fast as `sleep 0.01` lets it, the other serves a page with busybox
httpd on a published loopback port that a client thread requests every 20 ms. Then
`systemctl restart moord` N times, each once moord answers again. Afterwards every
number must be in `docker logs`, exactly once and in order, no request may have failed,
and the containers must be the same processes as before. The figures are printed; the
exit status is 1 when anything was lost.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs

from tests.support.daemon import DOCKER_CLI, docker_cli_description

SOCKET = Path("/run/moorage/moorage.sock")
UNIT = "moord.service"
WRITER = "cgv2-proof-writer"
WEB = "cgv2-proof-web"
WRITER_SCRIPT = 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.01; done'
WEB_SCRIPT = "mkdir -p /www && echo proof > /www/index.html && exec httpd -f -p 80 -h /www"


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    env = {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}"}
    result = subprocess.run([DOCKER_CLI, *args], env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def systemctl(*args: str) -> str:
    # a restart waits for READY=1: under emulation on a loaded host that took over 100 s
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=300,
                          check=True).stdout.strip()


def moord_pid() -> int:
    return int(systemctl("show", "-p", "MainPID", "--value", UNIT))


def wait_for_api(timeout: float = 300) -> float:
    """Seconds until moord answers `docker version` again."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if subprocess.run([DOCKER_CLI, "-H", f"unix://{SOCKET}", "version"], capture_output=True,
                          timeout=30, check=False).returncode == 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    journal = subprocess.run(["journalctl", "-u", UNIT, "-n", "30", "--no-pager"], capture_output=True,
                             text=True, check=False).stdout
    raise SystemExit(f"moord did not answer within {timeout:g}s after a restart; its journal:\n{journal}")


@attrs.define
class PortClient:
    """Requests the published page every `interval` seconds and counts the answers."""

    port: int
    interval: float = 0.02
    ok: int = 0
    failures: list[str] = attrs.Factory(list)
    longest_wait: float = 0.0
    stopping: threading.Event = attrs.Factory(threading.Event)

    def request(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/index.html")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or body != b"proof\n":
                raise OSError(f"HTTP {response.status} {body[:40]!r}")
        finally:
            conn.close()

    def loop(self) -> None:
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                self.request()
                self.ok += 1
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {exc!r}")
            self.longest_wait = max(self.longest_wait, time.monotonic() - t0)
            time.sleep(self.interval)


def container_pid(name: str) -> int:
    return int(json.loads(docker("inspect", name))[0]["State"]["Pid"])


def check_lines(text: str) -> tuple[int, list[int], int]:
    """(highest number, missing numbers, duplicated or out-of-order lines) in the log."""
    numbers = [int(line.split()[1]) for line in text.splitlines() if line.startswith("line ")]
    highest = max(numbers, default=0)
    missing = sorted(set(range(1, highest + 1)) - set(numbers))
    disorder = sum(1 for a, b in itertools.pairwise(numbers) if b != a + 1)
    return highest, missing, disorder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between restarts")
    options = parser.parse_args()
    try:
        return prove(options)
    finally:
        docker("rm", "-f", WRITER, WEB, check=False)


def prove(options: argparse.Namespace) -> int:
    print(f"restart proof: {docker_cli_description()}")
    if systemctl("is-active", UNIT) != "active":
        raise SystemExit(f"{UNIT} is not active: run scripts/setup.sh on a systemd host first")
    pid = moord_pid()
    print(f"restart proof: moord pid {pid}, {Path(f'/proc/{pid}/cgroup').read_text().strip()}")
    docker("rm", "-f", WRITER, WEB, check=False)
    docker("run", "-d", "--name", WRITER, "busybox", "sh", "-c", WRITER_SCRIPT)
    docker("run", "-d", "--name", WEB, "-p", f"127.0.0.1:{options.port}:80", "busybox", "sh", "-c",
           WEB_SCRIPT)
    pids = {name: container_pid(name) for name in (WRITER, WEB)}
    client = PortClient(options.port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.request()
            break
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise SystemExit("the published port never answered") from None
            time.sleep(0.2)
    thread = threading.Thread(target=client.loop, daemon=True)
    thread.start()
    time.sleep(options.settle)
    moord_pids = [pid]
    downtimes = []
    for n in range(options.restarts):
        t0 = time.monotonic()
        systemctl("restart", UNIT)
        downtimes.append(time.monotonic() - t0 + wait_for_api())
        moord_pids.append(moord_pid())
        print(f"restart proof: restart {n + 1}: moord pid {moord_pids[-2]} -> {moord_pids[-1]}, "
              f"API back after {downtimes[-1]:.1f}s")
        time.sleep(options.settle)
    client.stopping.set()
    thread.join()
    same = {name: container_pid(name) == p for name, p in pids.items()}
    docker("stop", "-t", "1", WRITER, timeout=120)
    highest, missing, disorder = check_lines(docker("logs", WRITER, timeout=300))
    print("restart proof: figures")
    print(f"  restarts of {UNIT}:       {options.restarts} (moord pids {' -> '.join(map(str, moord_pids))})")
    print(f"  API back after (s):        {', '.join(f'{d:.1f}' for d in downtimes)}")
    print(f"  log lines written:         {highest}; missing {len(missing)}; "
          f"duplicated or out of order {disorder}")
    print(f"  requests to the port:      {client.ok} answered, {len(client.failures)} failed; "
          f"slowest {client.longest_wait * 1000:.0f} ms")
    print(f"  containers kept their pid: {', '.join(f'{k} {v}' for k, v in same.items())}")
    problems = []
    if len(set(moord_pids)) != len(moord_pids):
        problems.append("moord's pid did not change at every restart")
    if missing:
        problems.append(f"lost log lines: {missing[:20]}{' ...' if len(missing) > 20 else ''}")
    if disorder:
        problems.append(f"{disorder} log lines duplicated or out of order")
    if client.failures:
        problems.append("failed requests: " + "; ".join(client.failures[:10]))
    if not all(same.values()):
        problems.append(f"a container was restarted: {same}")
    if highest == 0 or client.ok == 0:
        problems.append("nothing was written or answered")
    for problem in problems:
        print(f"restart proof: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print("restart proof: passed: no log line lost, every request answered")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
