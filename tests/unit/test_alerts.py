"""Alerts without a daemon: the labels' checks, which events are alerts, where they go,
and the delivery's retries, queue and deadline (on trio's autojump clock)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from engine.alerts.delivery import Alert, Deliverer, Retries
from engine.alerts.dispatch import (
    RESTART_LOOP_ACTION,
    AlertDispatcher,
    ContainerFacts,
    alert_kind,
    rfc3339_nano,
)
from engine.alerts.labels import ALERT_KINDS, check_labels, check_url, parse_kinds, wanted_kinds
from engine.api.wire.containers import parse_create
from engine.cli.alertflags import alert_labels
from engine.cli.options import OptionError
from engine.config import DaemonConfig, load_config
from engine.errors import InvalidParameter
from engine.events import Event, EventBus
from engine.metrics.catalog import METRICS

# --- labels and settings -----------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://alerts.example/x?k=v",
                                 "http://[::1]:9/"])
def test_http_and_https_urls_pass(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://host/x", "http:// or https://"), ("127.0.0.1:80/x", "http:// or https://"),
    ("http:///path", "no host"), ("http://host:port/", "invalid notify-url"),
    ("http://ho st/", "white space"), ("", "http:// or https://"),
])
def test_other_urls_are_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_url(url)


def test_kinds() -> None:
    assert parse_kinds("oom, die") == {"oom", "die"}
    assert parse_kinds("none") == frozenset()
    for bad in ("", "oom,boom", "none,oom"):
        with pytest.raises(ValueError, match="comma-separated list of unhealthy"):
            parse_kinds(bad)
    assert wanted_kinds({}) == set(ALERT_KINDS)
    assert wanted_kinds({"moorage.notify-on": "unhealthy"}) == {"unhealthy"}


def test_labels_are_checked_at_create() -> None:
    check_labels({"moorage.notify-url": "http://h/", "moorage.notify-on": "oom"})
    body: dict[str, Any] = {"Image": "busybox", "Labels": {"moorage.notify-url": "mailto:x@y"}}
    with pytest.raises(InvalidParameter, match=r"invalid moorage\.notify-url 'mailto:x@y'"):
        parse_create(body)
    body["Labels"] = {"moorage.notify-on": "death"}
    with pytest.raises(InvalidParameter, match=r"invalid moorage\.notify-on 'death'"):
        parse_create(body)
    body["Labels"] = {"moorage.notify-url": "https://h/x", "moorage.notify-on": "die,oom"}
    spec, _ = parse_create(body)
    assert spec.labels["moorage.notify-url"] == "https://h/x"


def test_moor_flags_make_the_labels() -> None:
    assert alert_labels({"notify_url": None, "notify_on": None}) == {}
    assert alert_labels({"notify_url": "http://h/", "notify_on": "oom"}) == {
        "moorage.notify-url": "http://h/", "moorage.notify-on": "oom"}
    with pytest.raises(OptionError, match="--notify-url"):
        alert_labels({"notify_url": "h:80", "notify_on": None})


def test_the_daemon_setting_is_checked() -> None:
    assert DaemonConfig(notify_url="https://h/hook").notify_url == "https://h/hook"
    with pytest.raises(ValueError, match="invalid notify-url"):
        DaemonConfig(notify_url="h/hook")
    with pytest.raises(SystemExit, match="invalid notify-url"):
        load_config(["--config-file", "/dev/null", "--notify-url", "tcp://h"])
    assert load_config(["--config-file", "/dev/null", "--notify-timeout", "2"]).notify_timeout == 2


# --- which events are alerts -------------------------------------------------------------


def _event(action: str, **attributes: str) -> Event:
    return Event("container", action, "c" * 64, {"name": "web", "image": "busybox", **attributes},
                 1_700_000_000_123_456_789)


ALWAYS = ContainerFacts(restart_policy="always", restart_count=3, exit_code=137)


def test_which_events_are_alerts() -> None:
    assert alert_kind(_event("health_status: unhealthy"), None) == "unhealthy"
    assert alert_kind(_event("health_status: healthy"), ALWAYS) is None
    assert alert_kind(_event("oom"), None) == "oom"
    assert alert_kind(_event(RESTART_LOOP_ACTION), ALWAYS) == "restart-loop"
    assert alert_kind(_event("die", reason="exited"), ALWAYS) == "die"
    assert alert_kind(_event("die", reason="monitor-lost"), ALWAYS) == "die"
    # a stop someone asked for, or no restart policy: not an alert
    assert alert_kind(_event("die", reason="user"), ALWAYS) is None
    assert alert_kind(_event("die", reason="daemon-shutdown"), ALWAYS) is None
    assert alert_kind(_event("die", reason="exited"), ContainerFacts()) is None
    assert alert_kind(_event("die", reason="exited"), None) is None
    assert alert_kind(_event("start"), ALWAYS) is None


def test_time_is_rfc3339_with_nanoseconds() -> None:
    assert rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"


# --- where alerts go ---------------------------------------------------------------------


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.hang_on = ""  # a URL whose attempts never end

    async def __call__(self, url: str, body: bytes) -> str:
        self.calls.append((trio.current_time(), url, json.loads(body)))
        if url == self.hang_on:
            await trio.sleep_forever()
        if self.failures:
            self.failures -= 1
            return "HTTP 503"
        return ""


async def _dispatching(nursery: trio.Nursery, recorder: Recorder, notify_url: str = "",
                       facts: ContainerFacts | None = ALWAYS) -> tuple[EventBus, AlertDispatcher]:
    bus = EventBus()
    dispatcher = AlertDispatcher(bus, lambda _id: facts, "engine-1", notify_url=notify_url,
                                 post=recorder, host="box")
    await nursery.start(dispatcher.run)
    return bus, dispatcher


async def test_an_alert_says_what_happened(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        bus, _ = await _dispatching(nursery, recorder, "http://daemon/")
        # moord's own subscriber is not a client of GET /events (the gauge counts those)
        assert (len(bus.subscribers), bus.clients) == (1, 0)
        bus.publish("container", "die", "c" * 64, {"name": "web", "image": "busybox",
                                                   "exitCode": "3", "reason": "exited"})
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    [(_, url, doc)] = recorder.calls
    assert url == "http://daemon/"
    assert doc["kind"] == "die"
    assert doc["exitCode"] == 3
    assert doc["reason"] == "exited"
    assert doc["host"] == "box"
    assert doc["engineId"] == "engine-1"
    assert doc["container"] == {"id": "c" * 64, "name": "web", "image": "busybox",
                                "restartPolicy": "always", "restartCount": 3}
    assert doc["time"].endswith("Z")


async def test_label_adds_a_destination_and_notify_on_narrows(
        autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        bus, dispatcher = await _dispatching(nursery, recorder, "http://daemon/")
        bus.publish("container", "oom", "a" * 64, {"moorage.notify-url": "http://mine/"})
        bus.publish("container", "oom", "b" * 64, {"moorage.notify-on": "die"})  # not wanted
        bus.publish("container", "oom", "c" * 64, {"moorage.notify-on": "none"})
        bus.publish("container", "oom", "d" * 64, {"moorage.notify-url": "http://daemon/"})
        await trio.sleep(1)
        dispatcher.reconfigure("", Retries())
        bus.publish("container", "oom", "e" * 64, {})  # no destination any more
        bus.publish("container", "oom", "f" * 64, {"moorage.notify-url": "http://mine/"})
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    sent = sorted((doc["container"]["id"][0], url) for _, url, doc in recorder.calls)
    assert sent == [("a", "http://daemon/"), ("a", "http://mine/"), ("d", "http://daemon/"),
                    ("f", "http://mine/")]


# --- delivery ----------------------------------------------------------------------------


async def test_retried_with_doubling_delays(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder(failures=2)
    sent, failed = METRICS.alerts_sent.get(kind="oom"), METRICS.alert_attempts_failed.get(kind="oom")
    async with trio.open_nursery() as nursery:
        deliverer = Deliverer(nursery, recorder, Retries(first=1, longest=60))
        deliverer.submit("http://h/", Alert("oom", b"{}"))
    times = [t - recorder.calls[0][0] for t, _, _ in recorder.calls]
    assert times == [0, 1, 3]
    assert METRICS.alerts_sent.get(kind="oom") == sent + 1
    assert METRICS.alert_attempts_failed.get(kind="oom") == failed + 2
    assert deliverer.destinations == {}  # nothing queued: no task, no record


async def test_given_up_at_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder(failures=1000)
    expired = METRICS.alerts_dropped.get(kind="die", reason="expired")
    async with trio.open_nursery() as nursery:
        deliverer = Deliverer(nursery, recorder, Retries(first=1, longest=4, give_up=20))
        deliverer.submit("http://h/", Alert("die", b"{}"))
    times = [round(t - recorder.calls[0][0]) for t, _, _ in recorder.calls]
    assert times == [0, 1, 3, 7, 11, 15, 19]
    assert METRICS.alerts_dropped.get(kind="die", reason="expired") == expired + 1


async def test_a_hung_webhook_times_out_and_a_full_queue_drops_the_oldest(
        autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    recorder.hang_on = "http://hung/"
    dropped = METRICS.alerts_dropped.get(kind="unhealthy", reason="queue-full")
    async with trio.open_nursery() as nursery:
        deliverer = Deliverer(nursery, recorder, Retries(attempt_timeout=5, give_up=0),
                              capacity=3)
        deliverer.submit("http://hung/", Alert("unhealthy", b'{"n": 0}'))
        await trio.sleep(1)  # the first is in flight, and hangs
        for n in range(1, 6):
            deliverer.submit("http://hung/", Alert("unhealthy", b'{"n": %d}' % n))
        assert deliverer.queued("http://hung/") == 3
        # another destination is not held up by the hung one
        deliverer.submit("http://other/", Alert("unhealthy", b'{"n": 9}'))
        await trio.sleep(1)
        assert [doc["n"] for _, url, doc in recorder.calls if url == "http://other/"] == [9]
    # each hung attempt ended at its timeout; the two oldest of the queue were pushed out
    assert [doc["n"] for _, url, doc in recorder.calls if url == "http://hung/"] == [0, 3, 4, 5]
    assert METRICS.alerts_dropped.get(kind="unhealthy", reason="queue-full") == dropped + 2


async def test_a_poster_that_raises_is_a_failed_attempt(autojump_clock: trio.testing.MockClock) -> None:
    calls = []

    async def broken(url: str, body: bytes) -> str:
        calls.append(url)
        raise ValueError("no such port")

    async with trio.open_nursery() as nursery:
        deliverer = Deliverer(nursery, broken, Retries(first=1, longest=1, give_up=2))
        deliverer.submit("http://h:1/", Alert("oom", b"{}"))
    assert len(calls) == 3  # tried, retried until its deadline; moord carried on
