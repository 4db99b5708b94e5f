"""Getting alerts to their webhooks without ever holding moord back.

Each destination URL has its own bounded in-memory queue and one sender task that
posts its alerts in order, retrying each with a doubling back-off until a deadline.
`submit` never waits: when a queue is full the oldest alert goes (and is counted), so
a dead or hung webhook costs memory bounded by the queue and delays nothing but its own
later alerts. A destination with nothing queued has no task.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import attrs
import httpx
import trio

import engine
from engine.config import DaemonConfig
from engine.metrics.catalog import METRICS

log = logging.getLogger("moord")

#: Alerts waiting per destination; more pushes the oldest out.
QUEUE_CAPACITY = 100
USER_AGENT = f"moorage/{engine.__version__} (alerts)"

#: (url, JSON body) → '' once a 2xx came back, else why not. The caller bounds its time.
Poster = Callable[[str, bytes], Awaitable[str]]


@attrs.frozen
class Retries:
    """When an alert is tried again: `first` seconds after a failure, doubling up to
    `longest`, never after `give_up` seconds from its first attempt; each attempt may
    take `attempt_timeout` seconds."""

    first: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    longest: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    give_up: float = attrs.field(default=900.0, validator=attrs.validators.ge(0))
    attempt_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))


def alert_retries(config: DaemonConfig) -> Retries:
    """The daemon's retry settings (only the attempt's timeout is a setting today)."""
    return Retries(attempt_timeout=config.notify_timeout)


@attrs.frozen
class Alert:
    kind: str
    body: bytes  # the JSON document, serialised once


@attrs.define(eq=False)
class _Destination:
    url: str
    queue: collections.deque[Alert] = attrs.field(factory=collections.deque)


@attrs.define(eq=False)
class Deliverer:
    """The queues and senders of every destination, in the nursery it is given."""

    nursery: trio.Nursery
    post: Poster
    retries: Retries = attrs.field(factory=Retries)
    capacity: int = QUEUE_CAPACITY
    destinations: dict[str, _Destination] = attrs.field(factory=dict)

    def submit(self, url: str, alert: Alert) -> None:
        """Queue `alert` for `url`; returns at once."""
        dest = self.destinations.get(url)
        if dest is None:
            dest = self.destinations[url] = _Destination(url)
            self.nursery.start_soon(self._drain, dest, name=f"alerts to {_safe(url)}")
        if len(dest.queue) >= self.capacity:
            dropped = dest.queue.popleft()
            METRICS.alerts_dropped.inc(kind=dropped.kind, reason="queue-full")
            log.warning("alerts to %s: queue full, dropped the oldest (%s)", _safe(url), dropped.kind)
        dest.queue.append(alert)

    def queued(self, url: str) -> int:
        dest = self.destinations.get(url)
        return len(dest.queue) if dest else 0

    async def _drain(self, dest: _Destination) -> None:
        try:
            while dest.queue:
                await self._deliver(dest.url, dest.queue.popleft())
        finally:
            if self.destinations.get(dest.url) is dest:
                del self.destinations[dest.url]

    async def _deliver(self, url: str, alert: Alert) -> None:
        r = self.retries
        deadline = trio.current_time() + r.give_up
        delay = r.first
        attempt = 0
        while True:
            attempt += 1
            failure = "no answer within the timeout"
            with trio.move_on_after(r.attempt_timeout):
                try:
                    failure = await self.post(url, alert.body)
                except Exception as exc:  # a URL httpx can't use (an image's label …)
                    failure = f"{type(exc).__name__}: {exc}"
            if not failure:
                METRICS.alerts_sent.inc(kind=alert.kind)
                return
            METRICS.alert_attempts_failed.inc(kind=alert.kind)
            if trio.current_time() + delay > deadline:
                METRICS.alerts_dropped.inc(kind=alert.kind, reason="expired")
                log.warning("alert %s to %s: giving up after %d attempts: %s", alert.kind,
                            _safe(url), attempt, failure)
                return
            log.info("alert %s to %s: attempt %d failed (%s); again in %g s", alert.kind,
                     _safe(url), attempt, failure, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, r.longest)


def _safe(url: str) -> str:
    """The URL for logs: scheme, host and port only (webhook paths and queries often
    carry the secret)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class HTTPPoster:
    """POSTs over httpx on trio (as registry pulls do, so the same proxy variables apply).
    Redirects are not followed: a 3xx is a failed attempt. httpx's own timeouts are off:
    the deliverer's cancel scope bounds each attempt as a whole."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(follow_redirects=False, timeout=None)

    async def __call__(self, url: str, body: bytes) -> str:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        try:
            async with self.client.stream("POST", url, content=body,
                                          headers=headers) as response:
                # the body is not read: only the status matters, and it may be huge
                if 200 <= response.status_code < 300:
                    return ""
                return f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def aclose(self) -> None:
        await self.client.aclose()
