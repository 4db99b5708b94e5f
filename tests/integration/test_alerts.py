"""Alerts end to end: a private moord whose `notify-url` points at a webhook server in
this process (127.0.0.1 only), and real containers that get OOM-killed, die under a
restart policy and turn unhealthy."""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.daemon import REPO, Moord, host_problems, inspect
from tests.support.webhook import Received, Webhooks, still_open, webhook_server

pytestmark = pytest.mark.integration

DAEMON_PATH = "/ok/daemon"


@pytest.fixture(scope="module")
def hooks() -> Iterator[Webhooks]:
    with webhook_server() as hooks:
        yield hooks


@contextmanager
def _private_moord(prefix: str, notify_url: str, *flags: str) -> Iterator[Moord]:
    """A moord of this test's own whose daemon.toml sets `notify-url`, with busybox,
    removed afterwards."""
    problems = host_problems()
    if problems:
        pytest.fail("this host cannot run the integration tests:\n  " + "\n  ".join(problems),
                    pytrace=False)
    daemon = Moord(Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")))
    try:
        daemon.root.mkdir(parents=True, exist_ok=True)
        (daemon.root / "daemon.toml").write_text(f'notify-url = "{notify_url}"\n')
        daemon.start("--config-file", str(daemon.root / "daemon.toml"), *flags)
        daemon.import_busybox()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture(scope="module")
def alerting(hooks: Webhooks) -> Iterator[Moord]:
    """A moord that sends its alerts to the webhook server; attempts may take a minute, so
    a hung webhook's request stays open for the whole test."""
    with _private_moord("moorda-", hooks.url(DAEMON_PATH), "--notify-timeout", "60") as daemon:
        yield daemon


def _run_hooked(daemon: Moord, name: str, url: str, restart: str, script: str,
                *labels: str) -> None:
    """`docker run -d` of a busybox `sh -c script` whose alerts also go to `url`."""
    label_flags = [flag for label in (f"moorage.notify-url={url}", *labels)
                   for flag in ("--label", label)]
    daemon.docker("run", "-d", "--name", name, "--restart", restart, *label_flags,
                  "busybox", "sh", "-c", script)


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _of(received: list[Received], container_id: str, kind: str | None = None) -> list[Received]:
    return [r for r in received if r.body["container"]["id"] == container_id
            and (kind is None or r.body["kind"] == kind)]


def _settle() -> None:
    """Time for an alert that should not come to arrive anyway (a negative check)."""
    time.sleep(2)


@pytest.mark.cgroup_v2  # an OOM kill as the unified hierarchy reports it
def test_an_oom_kill_sends_one_oom_alert(alerting: Moord, hooks: Webhooks) -> None:
    name = _name("oom")
    mine = f"/ok/{name}"
    result = alerting.docker("run", "--name", name, "--memory", "16m", "--memory-swap", "16m",
                             "--label", f"moorage.notify-url={hooks.url(mine)}",
                             "busybox", "sh", "-c", "x=a; while :; do x=$x$x; done", check=False)
    try:
        assert result.returncode == 137
        cid = str(inspect(alerting, name)["Id"])
        [alert] = hooks.wait_for(mine, lambda got: len(got) >= 1)
        _settle()
        # the label added a destination: the daemon's URL got it too; no restart policy, no die
        assert [r.body["kind"] for r in hooks.at(mine)] == ["oom"]
        assert [r.body["kind"] for r in _of(hooks.at(DAEMON_PATH), cid)] == ["oom"]
        doc = alert.body
        assert doc["container"]["id"] == cid
        assert doc["container"]["name"] == name
        assert doc["container"]["image"] == "busybox"
        assert doc["exitCode"] == 137
        assert doc["engineId"] == (alerting.data_root / "engine-id").read_text().strip()
        assert doc["host"]
        assert alert.headers["content-type"] == "application/json"
        assert alert.headers["user-agent"].startswith("moorage/")
    finally:
        alerting.docker("rm", "-f", name, check=False)


def test_a_restart_always_container_that_dies_sends_die_alerts(alerting: Moord,
                                                               hooks: Webhooks) -> None:
    name = _name("die")
    mine = f"/ok/{name}"
    _run_hooked(alerting, name, hooks.url(mine), "always", "sleep 0.5; exit 3",
                "moorage.notify-on=die")
    try:
        cid = str(inspect(alerting, name)["Id"])
        got = hooks.wait_for(mine, lambda got: len(got) >= 2)
        for alert in got:
            assert alert.body["kind"] == "die"
            assert alert.body["exitCode"] == 3
            assert alert.body["reason"] == "exited"
            assert alert.body["container"]["restartPolicy"] == "always"
        assert [r.body["container"]["restartCount"] for r in got[:2]] == [1, 2]
        hooks.wait_for(DAEMON_PATH, lambda all_: len(_of(all_, cid, "die")) >= 2)
        # a user's stop is not a death worth an alert
        alerting.docker("stop", "-t", "1", name)
        count = len(hooks.at(mine))
        _settle()
        assert len(hooks.at(mine)) == count
    finally:
        alerting.docker("rm", "-f", name, check=False)


def test_an_unhealthy_container_sends_one_unhealthy_alert(alerting: Moord,
                                                          hooks: Webhooks) -> None:
    name = _name("sick")
    alerting.docker("run", "-d", "--name", name, "--health-cmd", "echo sick; false",
                    "--health-interval", "1s", "--health-retries", "2",
                    "--label", "moorage.notify-on=unhealthy,oom", "busybox", "sleep", "300")
    try:
        cid = str(inspect(alerting, name)["Id"])
        hooks.wait_for(DAEMON_PATH, lambda all_: bool(_of(all_, cid)))
        _settle()  # more failed probes, no more alerts: it only turned unhealthy once
        [alert] = _of(hooks.at(DAEMON_PATH), cid)
        assert alert.body["kind"] == "unhealthy"
        assert alert.body["health"]["failingStreak"] >= 2
        assert "sick" in alert.body["health"]["output"]
    finally:
        alerting.docker("rm", "-f", name, check=False)


def test_a_failing_webhook_gets_the_alert_on_the_third_attempt(alerting: Moord,
                                                               hooks: Webhooks) -> None:
    name = _name("flaky")
    flaky = f"/flaky/{name}"
    _run_hooked(alerting, name, hooks.url(flaky), "on-failure:1", "exit 5",
                "moorage.notify-on=die")
    try:
        got = hooks.wait_for(flaky, lambda got: len(got) >= 3)
        # the server answered 503, 503, then 200: the same alert all three times, in order
        assert got[0].body == got[1].body == got[2].body
        assert got[0].body["container"]["restartCount"] == 1
        assert got[0].body["exitCode"] == 5
    finally:
        alerting.docker("rm", "-f", name, check=False)


def test_a_hung_webhook_delays_nothing(alerting: Moord, hooks: Webhooks) -> None:
    name = _name("hung")
    hung = f"/hang/{name}"
    _run_hooked(alerting, name, hooks.url(hung), "always", "sleep 0.5; exit 1")
    try:
        [request] = hooks.wait_for(hung, lambda got: len(got) >= 1)
        assert request.body["kind"] == "die"
        # while that request is still open: the container was restarted (and died again),
        # the daemon's own webhook got those later alerts, docker ps lists it, events answer
        cid = str(inspect(alerting, name)["Id"])
        deadline = time.monotonic() + 60
        # RestartCount counts at each exit, so 4 means three restarts done and a fourth due
        while int(inspect(alerting, name)["RestartCount"]) < 4:  # type: ignore[call-overload]
            assert time.monotonic() < deadline, "the restart policy stalled"
            time.sleep(0.2)
        hooks.wait_for(DAEMON_PATH, lambda all_: len(_of(all_, cid, "die")) >= 4)
        listed = alerting.docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.ID}}")
        assert listed.stdout.strip() == cid[:12]
        events = alerting.docker("events", "--since", "0", "--until", str(int(time.time()) + 1),
                                 "--filter", f"container={cid}", "--filter", "event=start",
                                 "--format", "{{.Action}}")
        # the first run's start and three policy restarts (each a start alone, as dockerd's)
        assert events.stdout.split().count("start") >= 4
        assert still_open(request.connection)
        assert len(hooks.at(hung)) == 1  # the rest queue behind the one in flight
    finally:
        hooks.release()
        alerting.docker("rm", "-f", name, check=False)


def test_bad_alert_settings_are_refused_at_create(alerting: Moord) -> None:
    bad = alerting.docker("create", "--label", "moorage.notify-url=ftp://host/x", "busybox",
                          check=False)
    assert bad.returncode != 0
    assert "invalid moorage.notify-url 'ftp://host/x': want an http:// or https:// URL" in bad.stderr
    bad = alerting.docker("create", "--label", "moorage.notify-on=oom,sadness", "busybox",
                          check=False)
    assert "invalid moorage.notify-on 'oom,sadness'" in bad.stderr
    assert alerting.docker("ps", "-aq", "--filter", "label=moorage.notify-on").stdout == ""


def test_moor_flags_reach_the_labels(alerting: Moord, hooks: Webhooks) -> None:
    name = _name("moor")
    moor = [sys.executable, "-m", "engine.cli"]
    made = subprocess.run([*moor, "create", "--name", name, "--notify-url", hooks.url("/ok/m"),
                           "--notify-on", "oom,die", "busybox"], env=alerting.env, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        assert made.returncode == 0, made.stderr
        labels = inspect(alerting, name)["Config"]["Labels"]  # type: ignore[index]
        assert labels["moorage.notify-url"] == hooks.url("/ok/m")
        assert labels["moorage.notify-on"] == "oom,die"
        bad = subprocess.run([*moor, "create", "--notify-url", "localhost:80", "busybox"],
                             env=alerting.env, cwd=REPO, capture_output=True, text=True,
                             timeout=60, check=False)
        assert bad.returncode != 0
        assert "--notify-url" in bad.stderr
    finally:
        alerting.docker("rm", "-f", name, check=False)


def test_a_reload_changes_the_daemons_url(hooks: Webhooks) -> None:
    """notify-url from daemon.toml; SIGHUP after editing it sends new alerts to the new URL."""
    with _private_moord("moordr-", hooks.url("/ok/before")) as daemon:
        config = daemon.root / "daemon.toml"

        def dies(name: str) -> str:
            daemon.docker("run", "-d", "--name", name, "--restart", "on-failure:1",
                          "busybox", "sh", "-c", "exit 4")
            return str(inspect(daemon, name)["Id"])

        first = dies(_name("r1"))
        hooks.wait_for("/ok/before", lambda got: len(_of(got, first, "die")) >= 2)
        config.write_text(f'notify-url = "{hooks.url("/ok/after")}"\n')
        log = daemon.reload("configuration reloaded")
        assert "changed: notify_url" in log
        second = dies(_name("r2"))
        hooks.wait_for("/ok/after", lambda got: len(_of(got, second, "die")) >= 2)
        assert _of(hooks.at("/ok/before"), second) == []
        assert _of(hooks.at("/ok/after"), first) == []
        # a bad URL is refused and the running one kept
        config.write_text('notify-url = "gopher://x"\n')
        log = daemon.reload("keeping the old one")
        assert "invalid notify-url 'gopher://x'" in log
