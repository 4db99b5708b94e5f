"""What the daemon's metrics read from the rest of moord: set once, or at each scrape.

The daemon hands in plain callables (the container table's statuses, the event bus's
subscriber count), so this module knows nothing of containers or the API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import attrs

from engine.metrics.catalog import CONTAINER_STATES, DaemonMetrics


@attrs.frozen
class EngineFacts:
    """`engine_daemon_engine_info`'s labels, as dockerd fills them."""

    version: str
    architecture: str
    kernel: str
    os: str
    os_version: str
    daemon_id: str
    graphdriver: str = "overlay"
    os_type: str = "linux"
    commit: str = ""


def describe_engine(metrics: DaemonMetrics, facts: EngineFacts) -> None:
    """The info gauge (always 1, its labels are the point), CPUs and memory."""
    metrics.engine_info.clear()
    metrics.engine_info.set(1, **{f.name: getattr(facts, f.name)
                                  for f in attrs.fields(EngineFacts)})
    metrics.engine_cpus.set(os.cpu_count() or 1)
    try:
        metrics.engine_memory.set(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        pass


def state_of(status: str) -> str:
    """dockerd's three states: running and paused as they are, anything else stopped."""
    return status if status in ("running", "paused") else "stopped"


def count_states(metrics: DaemonMetrics, statuses: Iterable[str]) -> None:
    counts = dict.fromkeys(CONTAINER_STATES, 0)
    for status in statuses:
        counts[state_of(status)] += 1
    for state, n in counts.items():
        metrics.container_states.set(n, state=state)


def watch_daemon(metrics: DaemonMetrics, *, statuses: Callable[[], Iterable[str]],
                 subscribers: Callable[[], int]) -> None:
    """Gauges read at each scrape: containers per state, event subscribers."""

    def collect() -> None:
        count_states(metrics, statuses())
        metrics.event_subscribers.set(subscribers())

    metrics.registry.on_collect(collect)
