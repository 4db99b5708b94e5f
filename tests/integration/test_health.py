"""Health checks end to end: real moord, crun/runc exec, the docker CLI and the SDK.

The file a probe looks for is created and removed through the container's root
filesystem as the host sees it (moord's overlay mount), so no test depends on when
a command inside the container runs. Waits poll with a generous deadline; nothing
asserts on how long anything took.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import REPO, Moord
from tests.support.health import (
    health_of,
    inspect_container,
    rootfs,
    status_is,
    wait_until,
)


def _run(moord: Moord, made: list[str], *args: str) -> str:
    cid = moord.docker("run", "-d", *args).stdout.strip()
    made.append(cid)
    return cid


def _probe_processes(marker: str) -> list[int]:
    """Host pids whose command line is `sleep <marker>` (a probe's, by its unique marker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[:2] == [b"sleep", marker.encode()]:
            found.append(int(entry.name))
    return found


def test_healthy_then_unhealthy_shown_by_inspect_and_ps(moord: Moord,
                                                        containers: list[str]) -> None:
    cid = _run(moord, containers, "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
               "--health-retries", "2", "busybox", "sh", "-c", "touch /tmp/ok; sleep 120")
    assert health_of(moord, cid) is not None
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    assert moord.docker("inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip() == "healthy"
    ps = moord.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.strip()
    assert ps.endswith("(healthy)"), ps

    (rootfs(moord, cid) / "tmp" / "ok").unlink()
    wait_until("unhealthy", status_is(moord, cid, "unhealthy"), moord)
    health = health_of(moord, cid)
    assert health is not None
    assert health["FailingStreak"] >= 2
    assert 1 <= len(health["Log"]) <= 5
    last = health["Log"][-1]
    assert last["ExitCode"] == 1
    assert last["Start"] <= last["End"]
    ps = moord.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.strip()
    assert ps.endswith("(unhealthy)"), ps
    # still running: with no --health-on-failure an unhealthy container is only reported
    assert inspect_container(moord, cid)["State"]["Running"] is True

    (rootfs(moord, cid) / "tmp" / "ok").touch()
    wait_until("healthy again", status_is(moord, cid, "healthy"), moord)


def test_probe_runs_as_the_containers_process(moord: Moord, containers: list[str]) -> None:
    cid = _run(moord, containers, "-u", "1000:1000", "-w", "/tmp", "-e", "MARK=from-env",
               "--health-cmd", 'echo "$MARK $(id -u):$(id -g) $(pwd)"',
               "--health-interval", "1s", "busybox", "sleep", "120")
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    health = health_of(moord, cid)
    assert health is not None
    assert health["Log"][-1]["Output"] == "from-env 1000:1000 /tmp\n"


def test_unhealthy_restart_by_label(moord: Moord, containers: list[str]) -> None:
    since = f"{time.time() - 1:.3f}"
    cid = _run(moord, containers, "--label", "moorage.health-on-failure=restart",
               "--health-cmd", "test -f /tmp/never", "--health-interval", "1s",
               "--health-retries", "1", "busybox", "sleep", "120")
    config = inspect_container(moord, cid)["Config"]
    assert config["Healthcheck"].get("OnFailure") == "restart"

    def restarted() -> bool:
        return int(inspect_container(moord, cid)["RestartCount"]) >= 1

    wait_until("a restart by the health check", restarted, moord)
    until = f"{time.time() + 1:.3f}"
    events = moord.docker("events", "--since", since, "--until", until, "--filter",
                          f"container={cid}", "--format", "{{.Action}}").stdout.split("\n")
    assert "health_status: unhealthy" in events
    assert "restart" in events
    assert events.index("health_status: unhealthy") < events.index("restart")


def test_moor_health_on_failure_stop(moord: Moord, containers: list[str]) -> None:
    """moor sends `Healthcheck.OnFailure` in the create body (the docker CLI can't)."""
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", "-d", "--health-cmd", "false",
         "--health-interval", "1s", "--health-retries", "1", "--health-on-failure", "stop",
         "busybox", "sleep", "120"],
        env=moord.env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    containers.append(cid)
    assert inspect_container(moord, cid)["Config"]["Healthcheck"]["OnFailure"] == "stop"

    def stopped() -> bool:
        return bool(inspect_container(moord, cid)["State"]["Status"] == "exited")

    wait_until("the health check's stop", stopped, moord)
    inspected = inspect_container(moord, cid)
    assert inspected["State"]["StopReason"] == "health"
    assert int(inspected["RestartCount"]) == 0


def test_no_healthcheck_disables_the_images(moord: Moord, containers: list[str]) -> None:
    tag = f"busybox-health-{secrets.token_hex(3)}:latest"
    moord.docker("import", "--change", "HEALTHCHECK --interval=1s CMD true",
                 "--change", 'CMD ["sh"]', str(moord.root / "busybox.tar"), tag)
    try:
        image = json.loads(moord.docker("image", "inspect", tag).stdout)[0]
        assert image["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]

        checked = _run(moord, containers, tag, "sleep", "120")
        wait_until("the image's check to pass", status_is(moord, checked, "healthy"), moord)

        plain = _run(moord, containers, "--no-healthcheck", tag, "sleep", "120")
        inspected = inspect_container(moord, plain)
        assert inspected["Config"]["Healthcheck"]["Test"] == ["NONE"]
        assert inspected["State"].get("Health") is None
        ps = moord.docker("ps", "--filter", f"id={plain}", "--format", "{{.Status}}").stdout
        assert "health" not in ps
    finally:
        moord.docker("rm", "-f", *containers, check=False)
        containers.clear()
        moord.docker("rmi", tag, check=False)


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_timed_out_probe_is_killed_with_its_children(moord: Moord, containers: list[str],
                                                     runtime: str) -> None:
    # each probe sleeps for a number of its own (base + its pid) and prints it first
    base = 100000 + secrets.randbelow(800000)
    cid = _run(moord, containers, "--runtime", runtime,
               "--health-cmd", f"m=$(({base}+$$)); echo $m; sleep $m & sleep $m; echo never",
               "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "2",
               "busybox", "sleep", "120")
    wait_until("unhealthy", status_is(moord, cid, "unhealthy"), moord)
    health = health_of(moord, cid)
    assert health is not None
    markers = []
    for probe in health["Log"]:
        assert probe["ExitCode"] == -1
        prefix = "Health check exceeded timeout (1s): "
        assert probe["Output"].startswith(prefix), probe["Output"]
        markers.append(probe["Output"][len(prefix):].strip())
    assert len(markers) >= 2
    # a logged probe is over: neither it nor the child it started may still be running
    wait_until("no probe left behind", lambda: not any(_probe_processes(m) for m in markers), moord,
           deadline=15)


def test_probe_children_holding_the_output_do_not_stall_it(moord: Moord,
                                                          containers: list[str]) -> None:
    cid = _run(moord, containers, "--health-cmd", "sleep 300 & echo left-a-child",
               "--health-interval", "1s", "busybox", "sleep", "120")
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    health = health_of(moord, cid)
    assert health is not None
    assert health["Log"][-1]["Output"] == "left-a-child\n"


def test_sdk_health_and_a_command_that_cannot_run(docker_client: Any, moord: Moord,
                                                  containers: list[str]) -> None:
    good = docker_client.containers.run(
        "busybox", ["sleep", "120"], detach=True,
        healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000})
    containers.append(good.id)
    bad = docker_client.containers.run(
        "busybox", ["sleep", "120"], detach=True,
        healthcheck={"test": ["CMD", "/no/such/probe"], "interval": 1_000_000_000, "retries": 1})
    containers.append(bad.id)

    def sdk_status(container: Any, status: str) -> Callable[[], bool]:
        def check() -> bool:
            container.reload()
            return bool(container.attrs["State"].get("Health", {}).get("Status") == status)

        return check

    wait_until("healthy via the SDK", sdk_status(good, "healthy"), moord)
    wait_until("unhealthy via the SDK", sdk_status(bad, "unhealthy"), moord)
    last = bad.attrs["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == -1
    assert "/no/such/probe" in last["Output"]
    listed = docker_client.api.containers(filters={"id": good.id})
    assert listed[0]["Status"].endswith("(healthy)")


def test_health_survives_stop_and_start(moord: Moord, containers: list[str]) -> None:
    # probes take most of the time, so the stop very likely lands in one
    cid = _run(moord, containers, "--health-cmd", "sleep 2", "--health-interval", "1s",
               "busybox", "sleep", "120")
    wait_until("healthy", status_is(moord, cid, "healthy"), moord)
    moord.docker("stop", "-t", "1", cid)
    health = health_of(moord, cid)
    assert health is not None  # the last status stays on record
    # a probe the stop's SIGKILL cut short says nothing about health: it isn't counted
    assert [p["ExitCode"] for p in health["Log"]] == [0] * len(health["Log"])
    assert health["Status"] == "healthy"
    moord.docker("start", cid)
    wait_until("healthy after a start", status_is(moord, cid, "healthy"), moord)


def test_ps_filters_byhealth_of(moord: Moord, containers: list[str]) -> None:
    checked = _run(moord, containers, "--health-cmd", "true", "--health-interval", "1s",
                   "busybox", "sleep", "120")
    plain = _run(moord, containers, "busybox", "sleep", "120")
    wait_until("healthy", status_is(moord, checked, "healthy"), moord)

    def listed(value: str) -> list[str]:
        return moord.docker("ps", "-q", "--no-trunc", "--filter", f"health={value}").stdout.split()

    assert checked in listed("healthy")
    assert plain not in listed("healthy")
    assert plain in listed("none")
    assert checked not in listed("none")
    refused = moord.docker("ps", "--filter", "health=great", check=False)
    assert refused.returncode != 0
    assert "Unrecognised filter value for health: great" in refused.stderr


def test_health_checks_resume_after_moord_restart(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    cid = d.docker("run", "-d", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
                   "--health-retries", "1", "busybox", "sh", "-c",
                   "touch /tmp/ok; sleep 120").stdout.strip()
    wait_until("healthy", status_is(d, cid, "healthy"), d)
    d.kill9()
    d.start()
    assert inspect_container(d, cid)["State"]["Running"] is True
    assert status_is(d, cid, "healthy")()  # the status was on record
    (rootfs(d, cid) / "tmp" / "ok").unlink()
    wait_until("unhealthy: the probes run again", status_is(d, cid, "unhealthy"), d)
