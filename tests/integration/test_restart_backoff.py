"""Per-container restart back-off and the restart-loop breaker, with real containers.

Judged from states, events and counters, never from elapsed times: a long first delay
leaves a container `restarting`, a short one lets it restart; the breaker's stop shows
in inspect, in one `restart-loop-broken` event and in moord's metrics.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from tests.integration.test_moor_cli import ok
from tests.integration.test_restart_policy import _events, _poll, _state
from tests.support.daemon import Moord, inspect
from tests.support.registry import free_port

P = "moorage.restart."
BROKEN_SERIES = 'moorage_restart_loops_broken_total{policy="always"}'


def _counter(address: str, series: str) -> float:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} is not in moord's metrics:\n{text}")


def _broken(d: Moord, name: str) -> bool:
    state = _state(d, name)
    return state["Status"] == "exited" and state["RestartLoopBroken"] is True


def test_the_breaker_stops_a_restart_loop_and_a_start_resets_it(
        fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    address = f"127.0.0.1:{free_port()}"
    d.start("--metrics-addr", address)
    d.import_busybox()
    assert _counter(address, BROKEN_SERIES) == 0
    since = time.time()
    d.docker("run", "-d", "--name", "loop", "--restart", "always",
             "--label", P + "max-quick-failures=3", "--label", P + "delay-initial=50ms",
             "busybox", "sh", "-c", "exit 3")
    _poll(lambda: _broken(d, "loop"), "the breaker to stop the loop", 90)
    time.sleep(1.0)  # had it not stopped, a 50 ms back-off would restart it meanwhile
    state = _state(d, "loop")
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 3
    assert state["QuickFailures"] == 3
    assert state["RestartCount"] == 2  # three runs: the first and two restarts
    assert "restart loop broken: 3 quick failures in a row" in str(state["Error"])
    assert len(_events(d, since, "container=loop", "event=die")) == 3
    assert len(_events(d, since, "container=loop", "event=start")) == 3
    broken = _events(d, since, "container=loop", "event=restart-loop-broken")
    assert len(broken) == 1
    assert broken[0]["Actor"]["Attributes"]["quickFailures"] == "3"  # type: ignore[index]
    assert broken[0]["Actor"]["Attributes"]["exitCode"] == "3"  # type: ignore[index]
    assert _counter(address, BROKEN_SERIES) == 1

    # a moord restart neither forgets the breaker nor starts the container again
    d.stop()
    d.start("--metrics-addr", address)
    time.sleep(1.0)
    state = _state(d, "loop")
    assert state["Status"] == "exited"
    assert state["RestartLoopBroken"] is True
    assert state["QuickFailures"] == 3

    # `docker start` closes the breaker: a whole new streak of three before it trips again
    again = time.time()
    d.docker("start", "loop")
    _poll(lambda: len(_events(d, again, "container=loop", "event=restart-loop-broken")) == 1,
          "the loop to break again", 90)
    assert len(_events(d, again, "container=loop", "event=die")) == 3
    state = _state(d, "loop")
    assert state["RestartCount"] == 2
    assert state["QuickFailures"] == 3
    assert _counter(address, BROKEN_SERIES) == 1  # a new moord counts from zero
    d.docker("rm", "-f", "loop")


def test_per_container_delays(moord: Moord) -> None:
    since = time.time()
    # a first delay of an hour (moor's flags, which become the labels): after its exit it
    # stays `restarting`
    ok(moord, "run", "-d", "--name", "slow", "--restart", "always",
       "--restart-delay-initial", "1h", "--restart-delay-max", "2h", "busybox", "sh", "-c", "exit 1")
    labels = inspect(moord, "slow")["Config"]["Labels"]  # type: ignore[index]
    assert labels[P + "delay-initial"] == "1h"  # type: ignore[index]
    assert labels[P + "delay-max"] == "2h"  # type: ignore[index]
    # a cap of 50 ms beside the daemon's back-off (100 ms doubling up to a minute)
    moord.docker("run", "-d", "--name", "capped", "--restart", "always",
                 "--label", P + "delay-initial=10ms", "--label", P + "delay-max=50ms",
                 "busybox", "sh", "-c", "exit 1")
    moord.docker("run", "-d", "--name", "daemons", "--restart", "always",
                 "busybox", "sh", "-c", "exit 1")
    try:
        _poll(lambda: _state(moord, "slow")["Status"] == "restarting", "the first exit")
        _poll(lambda: int(_state(moord, "capped")["RestartCount"]) >= 10,  # type: ignore[call-overload]
              "ten restarts with a capped back-off", 120)
        # the daemon's back-off needs 0.1+0.2+...+25.6 s of delays for ten restarts
        assert int(_state(moord, "daemons")["RestartCount"]) < 10  # type: ignore[call-overload]
        slow = _state(moord, "slow")
        assert slow["Status"] == "restarting"
        assert slow["RestartCount"] == 1
        assert len(_events(moord, since, "container=slow", "event=start")) == 1
        # a user's start doesn't wait for the back-off
        moord.docker("start", "slow")
        _poll(lambda: len(_events(moord, since, "container=slow", "event=start")) == 2,
              "a user's start of a restarting container")
    finally:
        moord.docker("rm", "-f", "slow", "capped", "daemons", check=False)


def test_bad_labels_are_refused_at_create(moord: Moord) -> None:
    for label, words in ((P + "delay-initial=soon", 'invalid duration "soon"'),
                         (P + "jitter=2", "a fraction from 0 to 1"),
                         (P + "max-quick-failures=-1", "a whole number"),
                         (P + "delay-initial=5m", "longer than the daemon's maximum restart delay")):
        result = moord.docker("create", "--name", "bad", "--label", label, "busybox", "true",
                              check=False)
        assert result.returncode != 0, label
        assert words in result.stderr, result.stderr
        assert moord.docker("ps", "-aq", "--filter", "name=bad").stdout.strip() == ""
    result = moord.docker("create", "--label", P + "delay-initial=2s", "--label",
                          P + "delay-max=1s", "busybox", "true", check=False)
    assert result.returncode != 0
    assert "cannot be shorter than" in result.stderr
