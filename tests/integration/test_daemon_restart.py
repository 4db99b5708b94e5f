"""moord can die at any instant; containers and their records must not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.support.daemon import DOCKER_CLI, Moord, inspect


def _state(d: Moord, ref: str) -> dict[str, object]:
    state = inspect(d, ref)["State"]
    assert isinstance(state, dict)
    return state


@pytest.mark.cgroup_v2
def test_kill9_mid_run_loses_nothing(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    # a container that keeps writing, one that exits while moord is down, one created only
    d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
             "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    d.docker("run", "-d", "--name", "quitter", "busybox", "sh", "-c", "sleep 1; exit 5")
    d.docker("create", "--name", "idle", "busybox", "true")
    pid_before = _state(d, "ticker")["Pid"]
    time.sleep(0.3)

    d.kill9()
    time.sleep(1.5)  # quitter exits while nobody watches; ticker keeps logging
    assert isinstance(pid_before, int)
    os.kill(pid_before, 0)  # still alive without moord

    d.start()
    ticker = _state(d, "ticker")
    assert ticker["Running"] is True
    assert ticker["Pid"] == pid_before
    quitter = _state(d, "quitter")
    assert quitter["Status"] == "exited"
    assert quitter["ExitCode"] == 5
    assert _state(d, "idle")["Status"] == "created"

    # the log has every line, with no gap over the time moord was down
    lines = d.docker("logs", "ticker").stdout.split("\n")
    numbers = [int(line.split()[1]) for line in lines if line.startswith("tick ")]
    assert numbers == list(range(len(numbers)))
    assert len(numbers) >= 15

    # the re-adopted container is fully controllable
    d.docker("stop", "-t", "1", "ticker")
    assert _state(d, "ticker")["ExitCode"] == 137
    d.docker("start", "idle")
    assert d.docker("wait", "idle").stdout.strip() == "0"


def test_sigterm_leaves_containers_running(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    d.docker("run", "-d", "--name", "survivor", "busybox", "sleep", "60")
    pid = _state(d, "survivor")["Pid"]
    assert d.stop(signal.SIGTERM) == 0
    assert isinstance(pid, int)
    os.kill(pid, 0)
    d.start()
    assert _state(d, "survivor")["Pid"] == pid
    out = json.loads(d.docker("ps", "--format", "{{json .}}").stdout.splitlines()[0])
    assert out["Names"] == "survivor"


def test_kill9_at_many_instants(fresh_moord: Callable[[], Moord]) -> None:
    """Kill moord at varied points of create/start/stop; every record stays readable."""
    d = fresh_moord()
    d.start()
    d.import_busybox()
    for delay in (0.0, 0.01, 0.03, 0.06, 0.1):
        proc = subprocess.Popen(
            [DOCKER_CLI, "run", "-d", "busybox", "sleep", "30"],
            env=d.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        d.kill9()
        proc.wait()
        d.start()
        ps = d.docker("ps", "-a", "--format", "{{.ID}} {{.State}}").stdout.split("\n")
        for line in filter(None, ps):
            _cid, state = line.split()
            assert state in ("created", "running", "exited"), line
    ids = d.docker("ps", "-aq").stdout.split()
    if ids:
        d.docker("rm", "-f", *ids)
    assert d.docker("ps", "-aq").stdout.strip() == ""


def test_a_pause_moord_did_not_record_is_seen_on_restart(fresh_moord: Callable[[], Moord]) -> None:
    """moord killed between the runtime's pause (or resume) and writing the record: the
    freezer, not the record, says what the container is when moord comes back."""
    d = fresh_moord()
    d.start()
    d.import_busybox()
    cid = d.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    d.kill9()
    crun = ["crun", f"--root={d.exec_root / 'crun'}"]
    subprocess.run([*crun, "pause", cid], check=True)
    d.start()
    assert _state(d, cid)["Status"] == "paused"
    d.docker("unpause", cid)
    d.kill9()
    subprocess.run([*crun, "pause", cid], check=True)  # recorded running, frozen again
    d.start()
    assert _state(d, cid)["Paused"] is True
    d.kill9()
    subprocess.run([*crun, "resume", cid], check=True)  # recorded paused, running
    d.start()
    assert _state(d, cid)["Status"] == "running"
    d.docker("rm", "-f", cid)
