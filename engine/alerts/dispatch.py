"""From moord's event bus to alerts: which container events are alerts, what their JSON
says, and where each goes (the daemon's `notify-url` and the container's own label).

It only listens to the bus, so supervision knows nothing of alerts, and it never waits
on a webhook (delivery.py queues). What an event lacks (the restart policy, the
health check's output) it reads from the container's record through `FactsLookup`,
which the daemon supplies, right after the event, before any restart's back-off ends.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import attrs
import trio

from engine.alerts.delivery import Alert, Deliverer, HTTPPoster, Poster, Retries
from engine.alerts.labels import DIE, NOTIFY_URL_LABEL, OOM, RESTART_LOOP, UNHEALTHY, wanted_kinds
from engine.events import Event, EventBus

log = logging.getLogger("moord")

#: The container event of the restart-loop breaker (`moorage.restart.max-quick-failures`).
RESTART_LOOP_ACTION = "restart-loop-broken"
UNHEALTHY_ACTION = "health_status: unhealthy"
#: Stops someone asked for: not deaths worth an alert.
DELIBERATE_STOPS = ("user", "daemon-shutdown")
SCHEMA_VERSION = 1


@attrs.frozen
class ContainerFacts:
    """What an alert says that its event does not carry."""

    restart_policy: str = "no"
    restart_count: int = 0
    exit_code: int = 0
    health_output: str = ""
    failing_streak: int = 0


FactsLookup = Callable[[str], "ContainerFacts | None"]


def _relevant(event: Event) -> bool:
    return event.type == "container" and (
        event.action in (UNHEALTHY_ACTION, RESTART_LOOP_ACTION) or event.action in ("oom", "die"))


def alert_kind(event: Event, facts: ContainerFacts | None) -> str | None:
    """The kind of alert `event` is, or None."""
    if event.type != "container":
        return None
    if event.action == UNHEALTHY_ACTION:
        return UNHEALTHY
    if event.action == "oom":
        return OOM
    if event.action == RESTART_LOOP_ACTION:
        return RESTART_LOOP
    if event.action == "die":
        policy = facts.restart_policy if facts else "no"
        if policy != "no" and event.attributes.get("reason") not in DELIBERATE_STOPS:
            return DIE
    return None


def rfc3339_nano(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def _exit_code(event: Event, facts: ContainerFacts | None) -> int | None:
    raw = event.attributes.get("exitCode")
    if raw is not None and raw.lstrip("-").isdigit():
        return int(raw)
    return facts.exit_code if facts else None


def alert_document(kind: str, event: Event, facts: ContainerFacts | None, *, host: str,
                   engine_id: str) -> dict[str, Any]:
    """The JSON body of an alert (docs/supervision.md, "Alerts", lists its fields)."""
    attrs_ = event.attributes
    doc: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "kind": kind,
        "time": rfc3339_nano(event.time_ns),
        "timeNano": event.time_ns,
        "host": host,
        "engineId": engine_id,
        "event": {"type": event.type, "action": event.action},
        "container": {
            "id": event.actor_id,
            "name": attrs_.get("name", ""),
            "image": attrs_.get("image", ""),
            "restartPolicy": facts.restart_policy if facts else None,
            "restartCount": facts.restart_count if facts else None,
        },
        "exitCode": None,
        "reason": None,
        "health": None,
    }
    if kind in (OOM, DIE, RESTART_LOOP):
        doc["exitCode"] = _exit_code(event, facts)
        doc["reason"] = attrs_.get("reason")
    if kind == UNHEALTHY and facts is not None:
        doc["health"] = {"failingStreak": facts.failing_streak, "output": facts.health_output}
    return doc


@attrs.define(eq=False)
class AlertDispatcher:
    """Subscribes to the bus and hands each alert to the deliverer for its destinations."""

    events: EventBus
    lookup: FactsLookup
    engine_id: str
    notify_url: str = ""
    retries: Retries = attrs.field(factory=Retries)
    post: Poster | None = None  # None: HTTP (tests of the routing pass a recorder)
    host: str = attrs.field(factory=socket.gethostname)
    deliverer: Deliverer | None = None

    def reconfigure(self, notify_url: str, retries: Retries) -> None:
        """A reload: new alerts go to the new URL; queued ones still go where they were."""
        self.notify_url = notify_url
        self.retries = retries
        if self.deliverer is not None:
            self.deliverer.retries = retries

    def destinations(self, event: Event) -> list[str]:
        urls = [self.notify_url, event.attributes.get(NOTIFY_URL_LABEL, "")]
        return list(dict.fromkeys(u for u in urls if u))

    def handle(self, event: Event) -> None:
        """Turn one event into alerts, queued; never waits."""
        assert self.deliverer is not None
        facts = self.lookup(event.actor_id)
        kind = alert_kind(event, facts)
        if kind is None or kind not in wanted_kinds(event.attributes):
            return
        urls = self.destinations(event)
        if not urls:
            return
        doc = alert_document(kind, event, facts, host=self.host, engine_id=self.engine_id)
        alert = Alert(kind, json.dumps(doc).encode())
        for url in urls:
            self.deliverer.submit(url, alert)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        http, post = None, self.post
        if post is None:
            http = post = HTTPPoster()
        try:
            async with trio.open_nursery() as nursery:
                self.deliverer = Deliverer(nursery, post, self.retries)
                started = False
                while True:
                    with self.events.subscribe(_relevant, internal=True) as (_, receive):
                        if not started:
                            task_status.started()
                            started = True
                        async for event in receive:
                            try:
                                self.handle(event)
                            except Exception:
                                log.exception("making an alert of %s %s failed", event.action,
                                              event.actor_id[:12])
                    # only a subscriber that fell 4,096 events behind is cut off
                    log.warning("alerts: the event bus cut the alert dispatcher off; resubscribing")
        finally:
            if http is not None:
                with trio.CancelScope(shield=True):
                    await http.aclose()
