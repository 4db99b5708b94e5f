"""The event bus: what happened to containers and images, for `GET /events`.

Publishing is synchronous and never blocks the engine: each subscriber has a bounded
queue, and one that falls too far behind is cut off (its client sees the stream end)
rather than slowing everyone. The last `RETAINED` events stay in memory so clients
can ask for `since` a moment in the past, as Docker keeps a short history too.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import attrs
import trio

from engine.metrics.catalog import METRICS

RETAINED = 1024
SUBSCRIBER_QUEUE = 4096


@attrs.frozen
class Event:
    type: str  # container | image | network | volume | daemon
    action: str  # create, start, die, "health_status: healthy", ...
    actor_id: str
    attributes: Mapping[str, str]
    time_ns: int

    @property
    def base_action(self) -> str:
        """The action without its detail (`health_status: healthy` → `health_status`)."""
        return self.action.split(":", 1)[0]


EventFilter = Callable[[Event], bool]


@attrs.define(eq=False)
class _Subscriber:
    send: trio.MemorySendChannel[Event]
    wanted: EventFilter
    internal: bool = False  # moord's own (alerts), not a client of `GET /events`


@attrs.define(eq=False)
class EventBus:
    history: collections.deque[Event] = attrs.field(
        factory=lambda: collections.deque(maxlen=RETAINED))
    subscribers: list[_Subscriber] = attrs.field(factory=list)

    def publish(self, type: str, action: str, actor_id: str,
                attributes: Mapping[str, str] | None = None) -> Event:
        event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns())
        self.history.append(event)
        METRICS.events.inc()
        for sub in list(self.subscribers):
            if not sub.wanted(event):
                continue
            try:
                sub.send.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                # too slow (or gone): cut it off instead of holding the engine back
                self.subscribers.remove(sub)
                sub.send.close()
        return event

    @property
    def clients(self) -> int:
        """Subscribers that are clients (the metric counts these, as dockerd's does)."""
        return sum(1 for sub in self.subscribers if not sub.internal)

    @contextmanager
    def subscribe(self, wanted: EventFilter, *, since_ns: int | None = None, internal: bool = False
                  ) -> Iterator[tuple[list[Event], trio.MemoryReceiveChannel[Event]]]:
        """Past events at or after `since_ns` that match (none without `since_ns`; 0 is
        the epoch, so every stored one), and a channel of new ones.

        Both are taken at the same instant, so nothing falls between them.
        """
        send, receive = trio.open_memory_channel[Event](SUBSCRIBER_QUEUE)
        past = ([] if since_ns is None else
                [e for e in self.history if e.time_ns >= since_ns and wanted(e)])
        sub = _Subscriber(send, wanted, internal)
        self.subscribers.append(sub)
        try:
            yield past, receive
        finally:
            if sub in self.subscribers:
                self.subscribers.remove(sub)
            send.close()
            receive.close()
