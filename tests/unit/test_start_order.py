"""Start order: the labels, the graph's checks, and the waiting (a fake manager, real trio)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

from engine.containers import ordered_start
from engine.containers.depends_labels import (
    DEFAULT_TIMEOUT_NS,
    Dependency,
    dependencies_of,
    parse_depends_on,
    parse_timeout,
    timeout_of,
)
from engine.containers.model import (
    Container,
    ContainerSpec,
    HealthState,
    HealthStatus,
    HostSpec,
    Status,
)
from engine.containers.start_order import check_new, cycle_through, graph_of, on_cycles
from engine.durations import SECOND
from engine.errors import InvalidParameter, NotFound
from engine.events import EventBus


def _container(name: str, depends_on: str | None = None, timeout: str | None = None,
               status: Status = Status.EXITED) -> Container:
    labels = {}
    if depends_on is not None:
        labels["moorage.depends-on"] = depends_on
    if timeout is not None:
        labels["moorage.depends-on.timeout"] = timeout
    c = Container(id=(name * 64)[:64], name=name, created=dt.datetime.now(dt.UTC),
                  image_id="sha256:" + "0" * 64, spec=ContainerSpec(image="busybox", labels=labels),
                  host=HostSpec(), path="sleep", args=["60"], runtime="crun")
    c.state.status = status
    return c


def _lookup(*containers: Container) -> Callable[[str], Container]:
    by_ref = {c.name: c for c in containers} | {c.id: c for c in containers}

    def lookup(ref: str) -> Container:
        if ref not in by_ref:
            raise NotFound(f"No such container: {ref}")
        return by_ref[ref]

    return lookup


# labels ---------------------------------------------------------------------------------

def test_depends_on_parses_names_ids_and_conditions() -> None:
    assert parse_depends_on("db:healthy, cache:started,/queue,") == [
        Dependency("db", "healthy"), Dependency("cache", "started"), Dependency("queue", "started")]
    assert parse_depends_on("") == []
    assert dependencies_of({}) == []


@pytest.mark.parametrize(("value", "words"), [
    ("db:ready", "unknown condition 'ready'"),
    (":healthy", "names no container"),
    ("db,db:healthy", "'db' is named twice"),
])
def test_depends_on_refuses_malformed_entries(value: str, words: str) -> None:
    with pytest.raises(InvalidParameter, match=words) as err:
        parse_depends_on(value)
    assert "moorage.depends-on=" in err.value.message


def test_timeout_is_a_go_duration_with_a_default() -> None:
    assert parse_timeout("90s") == 90 * SECOND
    assert parse_timeout("1m30s") == 90 * SECOND
    assert timeout_of({}) == DEFAULT_TIMEOUT_NS
    for bad in ("0", "-5s", "90", "25h", "soon"):
        with pytest.raises(InvalidParameter, match=r"moorage\.depends-on\.timeout"):
            parse_timeout(bad)


# the graph ------------------------------------------------------------------------------

def test_cycles_are_found_with_their_path() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"], "e": ["e"]}
    assert cycle_through("a", edges) == ["a", "b", "c", "a"]
    assert cycle_through("e", edges) == ["e", "e"]
    assert cycle_through("d", edges) is None
    assert on_cycles(edges) == {"a", "b", "c", "e"}


def test_graph_resolves_refs_and_drops_what_is_gone() -> None:
    db = _container("db")
    app = _container("app", "db:healthy,gone")
    by_id = _container("web", f"{db.id}:started")
    assert graph_of([db, app, by_id], _lookup(db, app, by_id)) == {
        db.id: [], app.id: [db.id], by_id.id: [db.id]}


def test_create_refuses_unknown_names_self_and_cycles() -> None:
    db = _container("db")
    lookup = _lookup(db)
    check_new("app", {"moorage.depends-on": "db:healthy"}, [db], lookup)
    check_new("app", {"moorage.depends-on": db.id}, [db], lookup)
    with pytest.raises(InvalidParameter, match="no such container: cache"):
        check_new("app", {"moorage.depends-on": "db,cache"}, [db], lookup)
    with pytest.raises(InvalidParameter, match="cannot depend on itself"):
        check_new("app", {"moorage.depends-on": "app"}, [db], lookup)
    with pytest.raises(InvalidParameter, match="timeout"):
        check_new("app", {"moorage.depends-on": "db", "moorage.depends-on.timeout": "x"}, [db],
                  lookup)
    # `web` still names `app`, removed since; a new `app` depending on web closes a cycle
    web = _container("web", "app")
    lookup = _lookup(db, web)
    with pytest.raises(InvalidParameter, match="cycle: app -> web -> app"):
        check_new("app", {"moorage.depends-on": "web"}, [db, web], lookup)


# waiting --------------------------------------------------------------------------------

class _Manager:
    """The manager's surface ordered starts use; a start is recorded and takes a tick."""

    def __init__(self, nursery: trio.Nursery, *containers: Container) -> None:
        self.events = EventBus()
        self.table = {c.id: c for c in containers}
        self.nursery = nursery
        self.started: list[str] = []
        self.unmet: list[tuple[str, dict[str, str]]] = []
        self.with_health_check: set[str] = set()
        self.restarts_held: set[str] = set()

    def get(self, ref: str) -> Container:
        return _lookup(*self.table.values())(ref)

    def records(self) -> list[Container]:
        return list(self.table.values())

    def recorded(self, container_id: str) -> bool:
        return container_id in self.table

    def publish(self, c: Container, action: str, **extra: str) -> None:
        if action == ordered_start.UNMET_EVENT:
            self.unmet.append((c.name, extra))
        self.events.publish("container", action, c.id, extra)

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        self.nursery.start_soon(fn, *args)

    async def start_by_policy(self, c: Container) -> None:
        await trio.lowlevel.checkpoint()
        c.state.status = Status.RUNNING
        c.state.health = HealthState() if c.name in self.with_health_check else None
        self.started.append(c.name)
        self.publish(c, "start")

    def turn_healthy(self, c: Container) -> None:
        assert c.state.health is not None
        c.state.health.status = HealthStatus.HEALTHY
        self.publish(c, "health_status: healthy")


async def test_independent_ones_start_at_once_and_dependents_after() -> None:
    db, cache = _container("db"), _container("cache")
    app = _container("app", "db:healthy,cache:started")
    solo = [_container(f"s{i}") for i in range(5)]
    async with trio.open_nursery() as nursery:
        m = _Manager(nursery, app, db, cache, *solo)
        m.with_health_check.add("db")
        ordered_start.start_all(m, [app, db, cache, *solo])
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(m.started) == sorted(["db", "cache", *(s.name for s in solo)])
        m.publish(db, "health_status: starting")
        await trio.testing.wait_all_tasks_blocked()
        assert "app" not in m.started
        m.turn_healthy(db)
        await trio.testing.wait_all_tasks_blocked()
    assert m.started[-1] == "app"
    assert m.unmet == []


async def test_a_dependency_without_health_check_counts_when_running() -> None:
    db = _container("db", status=Status.RUNNING)
    app = _container("app", "db:healthy")
    async with trio.open_nursery() as nursery:
        m = _Manager(nursery, app, db)
        ordered_start.start_all(m, [app])
    assert m.started == ["app"]
    assert m.unmet == []


async def test_timeout_starts_it_anyway_and_says_so(autojump_clock: trio.abc.Clock) -> None:
    db = _container("db", status=Status.RUNNING)
    db.state.health = HealthState()
    app = _container("app", "db:healthy", timeout="30s")
    async with trio.open_nursery() as nursery:
        m = _Manager(nursery, app, db)
        ordered_start.start_all(m, [app])
    assert m.started == ["app"]
    assert [(name, e["reason"], e["dependency"]) for name, e in m.unmet] == [
        ("app", "timeout", "db:healthy")]
    assert trio.current_time() == pytest.approx(30.0)


async def test_a_stopped_or_missing_dependency_is_not_waited_for() -> None:
    stopped = _container("stopped")  # not due: nothing will start it
    app = _container("app", "stopped,gone")
    async with trio.open_nursery() as nursery:
        m = _Manager(nursery, app, stopped)
        ordered_start.start_all(m, [app])
    assert m.started == ["app"]
    assert [e["reason"] for _, e in m.unmet] == ["unavailable", "unavailable"]


async def test_a_cycle_closed_by_a_rename_does_not_deadlock() -> None:
    a, b = _container("a", "b"), _container("b", "a")
    async with trio.open_nursery() as nursery:
        m = _Manager(nursery, a, b)
        ordered_start.start_all(m, [a, b])
    assert sorted(m.started) == ["a", "b"]
    assert sorted((name, e["reason"]) for name, e in m.unmet) == [("a", "cycle"), ("b", "cycle")]


async def test_held_policy_restarts_join_the_pass() -> None:
    """A reboot's exits leave dependents' restarts to the pass (`hold_restarts`)."""
    db = _container("db", status=Status.RESTARTING)
    app = _container("app", "db", status=Status.RESTARTING)
    up = _container("up", "db", status=Status.RUNNING)  # re-adopted: nothing to hold
    async with trio.open_nursery() as nursery:
        m = _Manager(nursery, app, db, up)
        ordered_start.hold_restarts(m)
        assert m.restarts_held == {app.id, up.id}
        ordered_start.start_all(m, [db])
        assert m.restarts_held == {app.id}
    assert m.started == ["db", "app"]
    assert m.restarts_held == set()
