"""Restart policies with real containers, judged from recorded events, not wall-clock bounds."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.support.daemon import DOCKER_CLI, Moord, inspect
from tests.support.reboot import conmon_pids, simulate_host_reboot


def _poll(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _state(d: Moord, ref: str) -> dict[str, object]:
    data = inspect(d, ref)
    state = data["State"]
    assert isinstance(state, dict)
    state["RestartCount"] = data["RestartCount"]
    return state


def _events(d: Moord, since: float, *filters: str) -> list[dict[str, object]]:
    args = ["events", "--since", f"{since:.9f}", "--until", f"{time.time():.9f}",
            "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    out = d.docker(*args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.cgroup_v2
def test_on_failure_gives_up_after_n(moord: Moord) -> None:
    since = time.time()
    moord.docker("run", "-d", "--name", "of3", "--restart", "on-failure:3", "busybox",
                 "sh", "-c", "exit 3")
    try:
        _poll(lambda: _state(moord, "of3")["Status"] == "exited"
              and _state(moord, "of3")["RestartCount"] == 3, "on-failure:3 to give up")
        time.sleep(1.0)
        state = _state(moord, "of3")
        assert state["RestartCount"] == 3
        assert state["ExitCode"] == 3
        starts = _events(moord, since, "container=of3", "event=start")
        assert len(starts) == 4
        dies = _events(moord, since, "container=of3", "event=die")
        assert [e["Actor"]["Attributes"]["exitCode"] for e in dies] == ["3"] * 4  # type: ignore[index]
    finally:
        moord.docker("rm", "-f", "of3", check=False)


def test_on_failure_does_not_restart_success(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "of0", "--restart", "on-failure", "busybox", "true")
    try:
        _poll(lambda: _state(moord, "of0")["Status"] == "exited", "exit")
        time.sleep(0.5)
        assert _state(moord, "of0")["RestartCount"] == 0
    finally:
        moord.docker("rm", "-f", "of0", check=False)


def test_always_backs_off_and_resets(fresh_moord: Callable[[], Moord]) -> None:
    # slow the back-off down so its steps are far apart compared to start latency
    d = fresh_moord()
    d.start("--restart-delay-initial", "0.5", "--restart-delay-reset", "2")
    d.import_busybox()
    since = time.time()
    # runs 1-3 fail at once; run 4 lasts 3 s (past the reset); run 5 fails at once
    script = ("n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; "
              "if [ $n -eq 4 ]; then sleep 3; fi; exit 1")
    d.docker("run", "-d", "--name", "al", "--restart", "always", "busybox", "sh", "-c", script)
    _poll(lambda: len(_events(d, since, "container=al", "event=start")) >= 6, "six starts", 90)
    d.docker("stop", "al")
    starts = [int(e["timeNano"]) for e in _events(d, since, "container=al", "event=start")]  # type: ignore[call-overload]
    dies = [int(e["timeNano"]) for e in _events(d, since, "container=al", "event=die")]  # type: ignore[call-overload]
    gaps = [(starts[i + 1] - dies[i]) / 1e9 for i in range(5)]
    # doubling while runs are short: 0.5, 1, 2 s ...
    assert gaps[0] < gaps[1] < gaps[2], gaps
    # ... run 4 lasted longer than the reset: back to the first delay
    assert gaps[3] < gaps[2], gaps
    assert gaps[3] < gaps[1], gaps
    state = _state(d, "al")
    assert state["Status"] == "exited"
    assert int(state["RestartCount"]) >= 5  # type: ignore[call-overload]


@pytest.mark.cgroup_v2
def test_stop_ends_restarts(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "loop", "--restart", "always", "busybox",
                 "sh", "-c", "sleep 0.2; exit 1")
    try:
        _poll(lambda: int(_state(moord, "loop")["RestartCount"]) >= 2, "two restarts")  # type: ignore[call-overload]
        moord.docker("stop", "-t", "1", "loop")
        count = _state(moord, "loop")["RestartCount"]
        time.sleep(2.0)
        state = _state(moord, "loop")
        assert state["Status"] == "exited"
        assert state["RestartCount"] == count
        assert state["StopReason"] == "user"
    finally:
        moord.docker("rm", "-f", "loop", check=False)


def test_a_survived_signal_is_not_a_stop(moord: Moord) -> None:
    """`docker kill -s HUP` that the container shrugs off must not disable its policy."""
    moord.docker("run", "-d", "--name", "hup", "--restart", "unless-stopped", "busybox",
                 "sh", "-c", "trap '' HUP; sleep 1.5; exit 1")
    try:
        time.sleep(0.5)
        moord.docker("kill", "-s", "HUP", "hup")
        _poll(lambda: int(_state(moord, "hup")["RestartCount"]) >= 1, "a restart")  # type: ignore[call-overload]
        assert _state(moord, "hup")["ManuallyStopped"] is False
    finally:
        moord.docker("rm", "-f", "hup", check=False)


def test_update_restart_policy(moord: Moord) -> None:
    moord.docker("run", "-d", "--name", "upd", "busybox", "sh", "-c", "sleep 0.5; exit 1")
    try:
        moord.docker("update", "--restart", "on-failure:2", "upd")
        assert inspect(moord, "upd")["HostConfig"]["RestartPolicy"] == {  # type: ignore[index]
            "Name": "on-failure", "MaximumRetryCount": 2}
        _poll(lambda: _state(moord, "upd")["RestartCount"] == 2
              and _state(moord, "upd")["Status"] == "exited", "two restarts then rest")
    finally:
        moord.docker("rm", "-f", "upd", check=False)


def test_policies_across_a_clean_moord_restart(fresh_moord: Callable[[], Moord]) -> None:
    """moord stopping its containers on shutdown: who comes back on the next start."""
    d = fresh_moord()
    d.start("--stop-containers-on-shutdown")
    d.import_busybox()
    for name, policy in (("al", "always"), ("us", "unless-stopped"), ("of", "on-failure"),
                         ("us-stopped", "unless-stopped"), ("no", "no")):
        d.docker("run", "-d", "--name", name, "--restart", policy, "--init", "busybox",
                 "sleep", "600")
    d.docker("stop", "-t", "1", "us-stopped")
    assert d.stop(signal.SIGTERM) == 0
    d.start()
    _poll(lambda: _state(d, "al")["Running"] is True and _state(d, "us")["Running"] is True,
          "always and unless-stopped to come back")
    time.sleep(1.0)
    assert _state(d, "of")["Running"] is False  # on-failure: a shutdown is no failure
    assert _state(d, "of")["StopReason"] == "daemon-shutdown"
    assert _state(d, "us-stopped")["Running"] is False
    assert _state(d, "no")["Running"] is False


@pytest.mark.cgroup_v2
def test_after_a_simulated_host_reboot(fresh_moord: Callable[[], Moord]) -> None:
    """A power cut: moord, conmons and containers all gone; the records say another boot."""
    d = fresh_moord()
    d.start()
    d.import_busybox()
    for name, policy in (("al", "always"), ("us", "unless-stopped"), ("of", "on-failure"),
                         ("al-stopped", "always"), ("us-stopped", "unless-stopped")):
        d.docker("run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "600")
    d.docker("stop", "-t", "0", "al-stopped", "us-stopped")
    ids = simulate_host_reboot(d)
    d.start()
    _poll(lambda: all(_state(d, n)["Running"] for n in ("al", "us", "al-stopped")),
          "always, unless-stopped and user-stopped always to start")
    time.sleep(1.0)
    assert _state(d, "of")["Running"] is False
    assert _state(d, "of")["StopReason"] == "host-crash"
    assert _state(d, "us-stopped")["Running"] is False
    for cid in ids:
        assert len(conmon_pids(cid)) <= 1


def test_kill9_while_containers_restart(fresh_moord: Callable[[], Moord]) -> None:
    """Kill moord while containers keep dying and restarting: nothing doubled or lost."""
    d = fresh_moord()
    d.start()
    d.import_busybox()
    names = [f"r{i}" for i in range(4)]
    for name in names:
        d.docker("run", "-d", "--name", name, "--restart", "always", "busybox",
                 "sh", "-c", "sleep 0.3; exit 1")
    d.docker("run", "-d", "--name", "steady", "busybox", "sleep", "600")
    ids = {name: str(inspect(d, name)["Id"]) for name in [*names, "steady"]}
    for _ in range(6):
        time.sleep(0.7)
        d.kill9()
        time.sleep(0.4)
        d.start()
        for name, cid in ids.items():
            assert len(conmon_pids(cid)) <= 1, name
    _poll(lambda: all(_state(d, n)["Status"] in ("running", "restarting") for n in names),
          "every always container to be running or about to")
    assert _state(d, "steady")["Running"] is True
    out = d.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert sorted(out) == sorted([*names, "steady"])


def test_events_stream_and_filters(moord: Moord) -> None:
    proc = subprocess.Popen(
        [DOCKER_CLI, "events", "--filter", "label=evtest=1", "--format",
         "{{.Action}}"], env=moord.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        moord.docker("run", "--name", "evt", "--label", "evtest=1", "busybox", "true")
        moord.docker("rename", "evt", "evt2")
        moord.docker("rm", "evt2")
        time.sleep(0.5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    actions = out.split()
    assert actions == ["create", "start", "die", "rename", "destroy"]


def test_events_since_until_replay(moord: Moord) -> None:
    since = time.time()
    moord.docker("run", "--rm", "--label", "evkind=replay", "busybox", "true")
    events = _events(moord, since, "label=evkind=replay", "type=container")
    actions = [e["Action"] for e in events]
    assert actions[0] == "create"
    assert "start" in actions
    assert "die" in actions
    assert actions[-1] == "destroy"
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"  # type: ignore[index]
    assert die["Actor"]["Attributes"]["reason"] == "exited"  # type: ignore[index]


def test_events_since_zero_lists_earlier_events(moord: Moord) -> None:
    """`--since 0` is the epoch: every stored event (it once listed none, 0 being taken
    for "no since")."""
    moord.docker("run", "--rm", "--label", "evkind=sincezero", "busybox", "true")
    out = moord.docker("events", "--since", "0", "--until", f"{time.time():.9f}",
                       "--filter", "label=evkind=sincezero", "--format", "{{.Action}}").stdout
    actions = out.split()
    assert actions[0] == "create"
    assert actions[-1] == "destroy"




def test_moor_update_and_events(moord: Moord) -> None:
    import sys

    moor = [sys.executable, "-m", "engine.cli"]
    since = f"{time.time():.3f}"
    moord.docker("create", "--name", "mupd", "--label", "moorevt=1", "busybox", "true")
    try:
        result = subprocess.run([*moor, "update", "--restart", "on-failure:1", "mupd"],
                                env=moord.env, capture_output=True, text=True, check=True)
        assert result.stdout == "mupd\n"
        policy = inspect(moord, "mupd")["HostConfig"]["RestartPolicy"]  # type: ignore[index]
        assert policy == {"Name": "on-failure", "MaximumRetryCount": 1}
        events = subprocess.run(
            [*moor, "events", "--since", since, "--until", f"{time.time():.3f}",
             "--filter", "label=moorevt=1"], env=moord.env, capture_output=True, text=True,
            check=True).stdout.splitlines()
        assert [line.split()[2] for line in events] == ["create", "update"]
        assert "(image=busybox, moorevt=1, name=mupd)" in events[0]
    finally:
        moord.docker("rm", "-f", "mupd", check=False)


def test_wait_returns_at_an_exit_the_policy_undoes(moord: Moord) -> None:
    """`docker wait` (condition not-running) returns at the container's next exit even
    when `always` restarts it, as dockerd's does; `rm` then says to stop it first."""
    moord.docker("run", "-d", "--name", "waited", "--restart", "always", "--network", "none",
                 "busybox", "sleep", "1")
    try:
        assert moord.docker("wait", "waited", timeout=60).stdout.strip() == "0"
        refused = moord.docker("rm", "waited", check=False)
        assert refused.returncode != 0
        assert "stop the container before" in refused.stderr.lower()
    finally:
        moord.docker("rm", "-f", "waited", check=False)
