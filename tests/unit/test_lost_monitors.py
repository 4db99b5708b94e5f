"""What moord does when a container's monitor dies under it (conmon killed), and with the
RUN containers of a build its previous self was running when it died.

Unit tests over the fake runtime of test_container_manager; the real thing is in
tests/integration/test_lost_monitor.py and test_build_crash.py.
"""

from __future__ import annotations

import signal
from typing import Any

import attrs
import trio
import trio.testing

from engine.containers.model import (
    Container,
    ContainerSpec,
    HostSpec,
    RestartPolicy,
    Status,
    StopReason,
)
from engine.store import converter
from tests.unit import test_container_manager as manager_tests
from tests.unit.test_container_manager import Daemon, Host, _daemon, _running, _settle, _until

daemon = manager_tests.daemon
host = manager_tests.host

KILL = f"kill {int(signal.SIGKILL)}"


def _monitor_dies(h: Host, c: Container) -> None:
    """conmon is SIGKILLed: its watch fires, no exit is recorded, the process runs on."""
    h.runtime.processes[c.id].watch.exited.set()


def _die_events(d: Daemon, c: Container) -> list[tuple[str, str | None, str | None]]:
    return [(e.action, e.attributes.get("exitCode"), e.attributes.get("reason"))
            for e in d.m.events.history if e.actor_id == c.id]


async def test_a_container_whose_conmon_dies_is_killed_and_exits_137(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    c = await _running(daemon.m)
    _monitor_dies(host, c)
    result = await daemon.m.wait(c, "not-running")
    assert result.status_code == 137
    assert (c.state.status, c.state.exit_code, c.state.stop_reason) == (
        Status.EXITED, 137, StopReason.MONITOR_LOST)
    assert KILL in host.runtime.calls  # nothing runs unsupervised
    assert host.runtime.status(c.id) == "gone"  # and the runtime forgot it
    assert _die_events(daemon, c) == [("create", None, None), ("start", None, None),
                                      ("die", "137", "monitor-lost")]


async def test_a_paused_container_whose_conmon_dies_is_thawed_to_die(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    c = await _running(daemon.m)
    await daemon.m.pause(c)
    _monitor_dies(host, c)
    assert (await daemon.m.wait(c, "not-running")).status_code == 137
    assert host.runtime.calls[-3:-1] == [KILL, "resume"]


async def test_restart_always_comes_back_once_with_one_start(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    c = await _running(daemon.m, RestartPolicy("always"))
    _monitor_dies(host, c)
    await _until(lambda: c.state.status is Status.RUNNING and c.state.restart_count == 1)
    await _settle()
    assert _die_events(daemon, c) == [("create", None, None), ("start", None, None),
                                      ("die", "137", "monitor-lost"), ("start", None, None)]
    assert host.runtime.status(c.id) == "running"


async def test_a_monitor_lost_while_moord_was_away_is_recorded_as_137(
        host: Host, autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            first = await _daemon(host, nursery)
            c = await _running(first.m)
            first.crash()
        _monitor_dies(host, c)  # conmon gone, the process still there (crun knows it)
        second = await _daemon(host, outer)
        again = second.m.get(c.id)
        # (the fake's delete records its kill as a conmon would: the reason reads `exited`
        # here, `monitor-lost` with a real dead conmon; the code is 137 either way)
        assert (again.state.status, again.state.exit_code) == (Status.EXITED, 137)
        assert host.runtime.status(c.id) == "gone"
        outer.cancel_scope.cancel()


# --- build steps ------------------------------------------------------------------------------

@attrs.define
class RecordingVolumes(manager_tests.FakeVolumes):
    released: list[tuple[str, bool]] = attrs.field(factory=list)

    async def release(self, container_id: str, mounts: Any, *, remove_anonymous: bool) -> None:
        self.released.append((container_id, remove_anonymous))


async def _build_step(d: Daemon, *, start: bool = True) -> Container:
    c, _ = await d.m.create(None, ContainerSpec(image="busybox"), HostSpec(), build_step=True)
    if start:
        await d.m.start(c)
    return c


async def test_the_build_step_marker_is_in_the_saved_record(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    c = await _build_step(daemon, start=False)
    plain = await _running(daemon.m)
    assert host.store.saved[c.id].build_step
    assert not host.store.saved[plain.id].build_step
    # records written before the marker existed read as ordinary containers
    raw = converter.unstructure(plain)
    del raw["build_step"]
    assert converter.structure(raw, Container).build_step is False


async def test_start_up_kills_and_removes_what_a_dead_moords_builds_left(
        host: Host, autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            first = await _daemon(host, nursery)
            running = await _build_step(first)  # a RUN step's process, conmon alive
            created = await _build_step(first, start=False)  # moord died before the start
            orphaned = await _build_step(first)  # its conmon died too
            kept = await _running(first.m)  # an ordinary container: re-adopted
            first.crash()
        host.runtime.lose(orphaned.id)
        m = host.manager()
        volumes = RecordingVolumes()
        m.volumes = volumes
        await outer.start(m.run)
        assert [c.id for c in m.records()] == [kept.id]
        assert set(host.store.saved) == {kept.id}
        assert host.runtime.status(running.id) == "gone"
        assert KILL in host.runtime.calls
        assert m.get(kept.id).state.status is Status.RUNNING
        # each one's anonymous volumes go with it, as the build's own removal does
        assert sorted(volumes.released) == sorted(
            (c.id, True) for c in (running, created, orphaned))
        actions = {c.id: [(e.action, e.attributes.get("reason")) for e in m.events.history
                          if e.actor_id == c.id] for c in (running, created, orphaned)}
        assert actions == {
            running.id: [("die", "build-abandoned"), ("destroy", None)],
            created.id: [("destroy", None)],
            orphaned.id: [("die", "build-abandoned"), ("destroy", None)],
        }
        outer.cancel_scope.cancel()
