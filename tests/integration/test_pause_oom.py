"""pause / unpause / stop of a paused container, and an OOM kill that says so."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from tests.support.daemon import Moord, inspect

pytestmark = [pytest.mark.integration, pytest.mark.cgroup_v2]


def test_pause_unpause_and_stop_while_paused(moord: Moord) -> None:
    name = f"pz-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                 "i=0; while :; do echo $i; i=$((i+1)); sleep 0.05; done")
    try:
        moord.docker("pause", name)
        state = inspect(moord, name)["State"]
        assert state["Status"] == "paused"  # type: ignore[index]
        assert state["Paused"] is True  # type: ignore[index]
        before = moord.docker("logs", name).stdout.count("\n")
        time.sleep(0.5)
        assert moord.docker("logs", name).stdout.count("\n") == before  # frozen: no output
        again = moord.docker("pause", name, check=False)
        assert "is already paused" in again.stderr
        moord.docker("unpause", name)
        time.sleep(0.3)
        assert moord.docker("logs", name).stdout.count("\n") > before
        moord.docker("pause", name)
        started = time.monotonic()
        moord.docker("stop", "-t", "1", name)  # a frozen container still stops
        assert time.monotonic() - started < 15
        assert inspect(moord, name)["State"]["Status"] == "exited"  # type: ignore[index]
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_oom_kill_is_reported(moord: Moord) -> None:
    name = f"oom-{secrets.token_hex(3)}"
    since = str(int(time.time()) - 1)
    result = moord.docker("run", "--name", name, "--memory", "16m", "--memory-swap", "16m",
                          "busybox", "sh", "-c", "x=a; while :; do x=$x$x; done", check=False)
    try:
        assert result.returncode == 137
        state = inspect(moord, name)["State"]
        assert state["OOMKilled"] is True  # type: ignore[index]
        assert state["ExitCode"] == 137  # type: ignore[index]
        events = moord.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                              "--filter", f"container={name}", "--format", "{{json .}}").stdout
        actions = [json.loads(line)["Action"] for line in events.splitlines() if line]
        assert "oom" in actions
    finally:
        moord.docker("rm", "-f", name, check=False)
