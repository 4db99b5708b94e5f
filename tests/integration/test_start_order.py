"""Start order (`moorage.depends-on`) after a simulated host reboot, judged by the order of
moord's events, never by elapsed time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from tests.integration.test_moor_cli import moor
from tests.support.daemon import Moord, inspect
from tests.support.reboot import simulate_host_reboot

#: a `db` whose health check passes only once it has made /tmp/ready, a few seconds in
#: (its file from the run before the reboot is removed first)
_DB = ("--restart", "always", "--health-cmd", "test -f /tmp/ready", "--health-interval", "500ms",
       "--health-retries", "1", "busybox", "sh", "-c",
       "rm -f /tmp/ready; sleep 3; touch /tmp/ready; exec sleep 600")


def _poll(predicate: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _running(d: Moord, *names: str) -> bool:
    return all(inspect(d, n)["State"]["Status"] == "running" for n in names)  # type: ignore[index]


def _events(d: Moord, since: float) -> list[tuple[str, str, dict[str, str]]]:
    """(container name, action, attributes) of every container event since `since`, in order."""
    out = d.docker("events", "--since", f"{since:.9f}", "--until", f"{time.time():.9f}",
                   "--filter", "type=container", "--format", "{{json .}}").stdout
    found = []
    for line in out.splitlines():
        e = json.loads(line)
        attrs = e["Actor"]["Attributes"]
        found.append((attrs["name"], e["Action"], attrs))
    return found


def _index(events: list[tuple[str, str, dict[str, str]]], name: str, action: str) -> int:
    for i, (n, a, _) in enumerate(events):
        if n == name and a == action:
            return i
    raise AssertionError(f"no {action} of {name} in {[(n, a) for n, a, _ in events]}")


@pytest.mark.cgroup_v2
def test_dependents_start_after_their_dependencies(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    d.docker("run", "-d", "--name", "db", *_DB)
    d.docker("run", "-d", "--name", "cache", "--restart", "always", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "app", "--restart", "always",
             "--label", "moorage.depends-on=db:healthy,cache", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "web", "--restart", "always",
             "--label", "moorage.depends-on=cache:started", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "solo", "--restart", "always", "busybox", "sleep", "600")
    simulate_host_reboot(d)
    since = time.time()
    d.start()
    _poll(lambda: _running(d, "db", "cache", "app", "web", "solo"), "all five to run")
    _poll(lambda: any(a == "start" and n == "app" for n, a, _ in _events(d, since)),
          "app's start event")
    events = _events(d, since)
    healthy = _index(events, "db", "health_status: healthy")
    assert _index(events, "db", "start") < healthy < _index(events, "app", "start")
    assert _index(events, "cache", "start") < _index(events, "app", "start")
    assert _index(events, "cache", "start") < _index(events, "web", "start")
    # nothing was waited for in vain, and `solo` did not wait for anyone
    assert [e for e in events if e[1] == "depends-on-unmet"] == []
    assert _index(events, "solo", "start") < healthy


def test_a_dependency_late_past_the_timeout(fresh_moord: Callable[[], Moord]) -> None:
    """Past its timeout the dependent starts anyway, and says so in an event and the log."""
    d = fresh_moord()
    d.start()
    d.import_busybox()
    d.docker("run", "-d", "--name", "never", "--restart", "always", "--health-cmd", "false",
             "--health-interval", "500ms", "busybox", "sleep", "600")
    d.docker("run", "-d", "--name", "app", "--restart", "always",
             "--label", "moorage.depends-on=never:healthy",
             "--label", "moorage.depends-on.timeout=3s", "busybox", "sleep", "600")
    simulate_host_reboot(d)
    since = time.time()
    d.start()
    _poll(lambda: _running(d, "never", "app"), "both to run")
    events = _events(d, since)
    unmet = _index(events, "app", "depends-on-unmet")
    assert _index(events, "never", "start") < unmet < _index(events, "app", "start")
    attrs = events[unmet][2]
    assert (attrs["dependency"], attrs["reason"]) == ("never:healthy", "timeout")
    assert "without waiting for never:healthy" in d.log_tail(400)
    assert inspect(d, "never")["State"]["Health"]["Status"] != "healthy"  # type: ignore[index]


def test_create_refuses_unknown_names_cycles_and_bad_labels(moord: Moord) -> None:
    def refused(*args: str) -> str:
        result = moord.docker("create", *args, "busybox", "true", check=False)
        assert result.returncode != 0, args
        return result.stderr

    moord.docker("create", "--name", "so-b", "busybox", "true")
    try:
        assert "no such container: nosuch" in refused(
            "--name", "so-a", "--label", "moorage.depends-on=so-b,nosuch:healthy")
        assert "cannot depend on itself" in refused(
            "--name", "so-a", "--label", "moorage.depends-on=so-a")
        assert "unknown condition 'ready'" in refused(
            "--name", "so-a", "--label", "moorage.depends-on=so-b:ready")
        assert "moorage.depends-on.timeout" in refused(
            "--name", "so-a", "--label", "moorage.depends-on=so-b",
            "--label", "moorage.depends-on.timeout=soon")
        # so-a depends on so-b; so-b is removed and a new so-b depending on so-a would close
        # a cycle
        moord.docker("create", "--name", "so-a", "--label", "moorage.depends-on=so-b:started",
                     "busybox", "true")
        moord.docker("rm", "so-b")
        assert "cycle: so-b -> so-a -> so-b" in refused(
            "--name", "so-b", "--label", "moorage.depends-on=so-a")
        assert moord.docker("ps", "-a", "--filter", "name=so-b", "-q").stdout.strip() == ""
        # by ID too
        a_id = str(inspect(moord, "so-a")["Id"])
        moord.docker("create", "--name", "so-c", "--label", f"moorage.depends-on={a_id[:12]}",
                     "busybox", "true")
        # a user's start does not wait (so-a has never run): the order is start-up's
        moord.docker("start", "so-c")
        assert moord.docker("wait", "so-c").stdout.strip() == "0"
        # moor's flags make the labels
        made = moor(moord, "create", "--name", "so-d", "--depends-on", "so-a:healthy",
                    "--depends-on", "so-c", "--depends-on-timeout", "30s", "busybox", "true")
        assert made.returncode == 0, made.stderr
        labels = inspect(moord, "so-d")["Config"]["Labels"]  # type: ignore[index]
        assert labels["moorage.depends-on"] == "so-a:healthy,so-c"  # type: ignore[index]
        assert labels["moorage.depends-on.timeout"] == "30s"  # type: ignore[index]
        for flags, words in ((("--depends-on", "nosuch"), "no such container: nosuch"),
                             (("--depends-on", "so-a:up"), "unknown condition 'up'")):
            result = moor(moord, "create", *flags, "busybox", "true")
            assert result.returncode != 0
            assert words in result.stderr
    finally:
        moord.docker("rm", "-f", "so-a", "so-b", "so-c", "so-d", check=False)
