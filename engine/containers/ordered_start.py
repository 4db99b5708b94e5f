"""Start order at moord's start: the restart policies' starts, each after its dependencies.

Every container due to start gets a task at once, so containers that depend on nothing
start in parallel as before; a dependent's task waits (on the event bus, not by
polling) until each dependency meets its condition (`moorage.depends-on`,
`engine.containers.depends_labels`), then starts it by its policy. A dependency this
pass starts is waited for until its start was tried; one that is neither running nor
about to be (stopped, failed to start, removed, renamed away) is not waited for.

Waiting never keeps a container down for good: a restart-always host wants its service
back even when a dependency is late. Past the timeout (the label's, 2 minutes by
default) or when a dependency cannot come, the container starts anyway, with a
warning in moord's log and a `depends-on-unmet` container event saying which
dependency, which condition and why. Containers whose dependencies form a cycle (a
rename can close one after create) start without waiting, with the same warning.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from engine.containers.depends_labels import (
    DEPENDS_ON_LABEL,
    Dependency,
    dependencies_of,
    timeout_of,
)
from engine.containers.model import Container, HealthStatus, Status
from engine.containers.start_order import graph_of, on_cycles, resolved
from engine.durations import SECOND, format_duration
from engine.errors import EngineError
from engine.events import Event, EventBus

log = logging.getLogger(__name__)

#: the event a dependent gets when it starts without its dependencies met
UNMET_EVENT = "depends-on-unmet"


class StartsInOrder(Protocol):
    """What ordered starts need of the container manager (which is one)."""

    #: IDs whose restart a policy decided at an exit found at start-up: this pass makes it
    restarts_held: set[str]

    @property
    def events(self) -> EventBus: ...

    def get(self, ref: str) -> Container: ...

    def records(self) -> list[Container]: ...

    def recorded(self, container_id: str) -> bool: ...

    def publish(self, c: Container, action: str, **extra: str) -> None: ...

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None: ...

    async def start_by_policy(self, c: Container) -> None: ...


def hold_restarts(m: StartsInOrder) -> None:
    """Before start-up's reconciling: the policy restarts of containers with dependencies,
    decided at the exits it records (a reboot's), are left to `start_all`."""
    m.restarts_held.update(c.id for c in m.records() if DEPENDS_ON_LABEL in c.spec.labels)


def start_all(m: StartsInOrder, due: list[Container]) -> None:
    """Start `due` and the held restarts by their restart policies, each once its
    dependencies are met."""
    listed = {c.id for c in due}
    due = [*due, *(c for c in m.records() if c.id in m.restarts_held and c.id not in listed
                   and c.state.status is Status.RESTARTING)]
    m.restarts_held.intersection_update(c.id for c in due)
    tried = {c.id: trio.Event() for c in due}
    cyclic = on_cycles(graph_of(m.records(), m.get))
    for c in due:
        m.spawn(_start_one, m, c, tried, c.id in cyclic)


async def _start_one(m: StartsInOrder, c: Container, tried: dict[str, trio.Event],
                     cyclic: bool) -> None:
    try:
        try:
            deps = dependencies_of(c.spec.labels)
            timeout = timeout_of(c.spec.labels)
        except EngineError as exc:  # checked at create: only a hand-edited record gets here
            _unmet(m, c, "-", "label", exc.message)
            deps, timeout = [], 0
        if deps and cyclic:
            _unmet(m, c, ",".join(map(str, deps)), "cycle",
                   "its dependencies lead back to it")
        elif deps:
            await _wait_for_all(m, c, deps, timeout, tried)
        if m.recorded(c.id):
            await m.start_by_policy(c)
    finally:
        tried[c.id].set()
        m.restarts_held.discard(c.id)


async def _wait_for_all(m: StartsInOrder, c: Container, deps: list[Dependency], patience: int,
                        tried: dict[str, trio.Event]) -> None:
    """Wait until every dependency is met, or cannot be, or the timeout passes."""
    pending = list(deps)
    with trio.move_on_after(patience / SECOND):
        while pending:
            dep = pending[0]
            why = await _wait_for(m, dep, tried)
            if why:
                _unmet(m, c, str(dep), "unavailable", why)
            pending.pop(0)
        return
    for dep in pending:
        _unmet(m, c, str(dep), "timeout", f"not met after {format_duration(patience)}")


async def _wait_for(m: StartsInOrder, dep: Dependency, tried: dict[str, trio.Event]) -> str:
    """Until `dep` is met (""), or why it cannot be."""
    while True:
        target = resolved(m.get, dep.ref)
        if target is None:
            return "no such container (removed or renamed)"
        started = tried.get(target.id)
        if started is not None and not started.is_set():
            await started.wait()  # this pass starts it: wait until it has tried
            continue
        with m.events.subscribe(_about(target.id)) as (_, changes):
            while True:
                why = _verdict(m, target, dep.condition)
                if why is not None:
                    return why
                try:
                    await changes.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    break  # cut off by the bus: subscribe again


def _about(container_id: str) -> Callable[[Event], bool]:
    return lambda e: e.type == "container" and e.actor_id == container_id


def _verdict(m: StartsInOrder, dep: Container, condition: str) -> str | None:
    """"" when met, None while it may still be, else why it cannot be."""
    if not m.recorded(dep.id):
        return "no such container (removed)"
    status = dep.state.status
    if status is Status.RESTARTING:
        return None  # its policy restarts it after the back-off
    if status is Status.PAUSED:
        return "" if condition == "started" else None
    if status is not Status.RUNNING:
        return f"it is {status.value} and nothing will start it"
    health = dep.state.health
    if condition == "healthy" and health is not None and health.status is not HealthStatus.HEALTHY:
        return None
    return ""


def _unmet(m: StartsInOrder, c: Container, dependency: str, reason: str, why: str) -> None:
    """Say loudly that `c` starts without a dependency met: log and event."""
    log.warning("starting %s without waiting for %s (%s): %s", c.name, dependency,
                DEPENDS_ON_LABEL, why, extra=c.log_fields(UNMET_EVENT))
    m.publish(c, UNMET_EVENT, dependency=dependency, reason=reason, detail=why)
