"""The event bus and Docker's event filters."""

from __future__ import annotations

import pytest
import trio

from engine.api.wire.events import event_filter, event_json
from engine.errors import InvalidParameter
from engine.events import SUBSCRIBER_QUEUE, Event, EventBus


def _container_event(action: str, name: str = "web", **attrs: str) -> Event:
    return Event("container", action, "ab" * 32, {"name": name, "image": "busybox", **attrs}, 10**18)


def test_filters_match_like_docker() -> None:
    die = _container_event("die", exitCode="1", tier="front")
    health = _container_event("health_status: healthy")
    assert event_filter({"event": ["die"]})(die)
    assert event_filter({"event": ["health_status"]})(health)
    assert not event_filter({"event": ["start"]})(die)
    assert event_filter({"container": ["web"]})(die)
    assert event_filter({"container": ["abab"]})(die)
    assert not event_filter({"container": ["db"]})(die)
    assert event_filter({"image": ["busybox"]})(die)
    assert event_filter({"label": ["tier=front"]})(die)
    assert not event_filter({"label": ["tier=back"]})(die)
    assert not event_filter({"type": ["image"]})(die)
    with pytest.raises(InvalidParameter):
        event_filter({"colour": ["red"]})
    with pytest.raises(InvalidParameter):
        event_filter({"type": ["spaceship"]})


def test_event_json_has_legacy_fields() -> None:
    body = event_json(_container_event("start"))
    assert body["Type"] == "container"
    assert body["status"] == "start"
    assert body["from"] == "busybox"
    assert body["time"] == 10**9
    assert body["timeNano"] == 10**18


async def test_subscribe_replays_then_follows() -> None:
    bus = EventBus()
    first = bus.publish("container", "create", "c1", {})
    with bus.subscribe(lambda e: True, since_ns=first.time_ns) as (past, live):
        assert [e.action for e in past] == ["create"]
        bus.publish("container", "start", "c1", {})
        event = await live.receive()
        assert event.action == "start"


async def test_a_slow_subscriber_is_cut_off() -> None:
    bus = EventBus()
    with bus.subscribe(lambda e: True) as (_, live):
        for i in range(SUBSCRIBER_QUEUE + 1):
            bus.publish("container", "start", str(i), {})
        assert not bus.subscribers
        received = 0
        while True:
            try:
                await live.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break
            received += 1
        assert received == SUBSCRIBER_QUEUE
