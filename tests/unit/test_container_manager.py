"""The container manager's lifecycle against a fake runtime, on trio's mock clock.

`FakeRuntime` implements `engine.runtime.interface.ContainerRuntime` with a table of fake
processes: each has a status, the signals it dies of, and an exit watch the test can
fire (`exit`). The image store, bundles, volumes, networks and the record store are
small fakes too, so no crun, conmon, mount or cgroup is touched and no test waits real
seconds: grace periods and restart back-offs pass on the autojump clock.
"""

from __future__ import annotations

import copy
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing

from engine.config import DaemonConfig
from engine.containers.manager import ContainerManager
from engine.containers.model import (
    Container,
    ContainerSpec,
    HostSpec,
    RestartPolicy,
    Status,
    StopReason,
)
from engine.containers.table import ContainerTable
from engine.errors import Conflict, InvalidParameter, NotFound, NotModified
from engine.events import EventBus
from engine.images.model import ImageConfig
from engine.runtime.cgroups import CgroupLayout
from engine.runtime.host import HostProfile, RuntimeInfo
from engine.runtime.interface import (
    ContainerGone,
    ContainerRuntime,
    Created,
    ExitStatus,
    ExitWatch,
    LaunchOptions,
    RuntimeCreateFailed,
    RuntimeState,
    RuntimeTarget,
)
from engine.runtime.oci import OCIRuntime
from plugins.contracts import LoggedContainer, LogRecord

BOOT = "boot-1"


# --- the fake runtime ---------------------------------------------------------------------

@attrs.define(eq=False)
class FakeWatch:
    monitor_pid: int
    exited: trio.Event = attrs.field(factory=trio.Event)
    closed: bool = False

    async def wait(self) -> None:
        await self.exited.wait()

    def close(self) -> None:
        self.closed = True


@attrs.define(eq=False)
class FakeProcess:
    """A container's process under its fake monitor."""

    pid: int
    watch: FakeWatch
    status: str = "created"  # created | running | paused | stopped
    deadly: frozenset[int] = frozenset({signal.SIGKILL, signal.SIGTERM})
    pending: list[int] = attrs.field(factory=list)  # signals sent while frozen


@attrs.define(eq=False)
class FakeRuntime:
    """`ContainerRuntime` with fake processes; `calls` journals what the manager asked."""

    tmp: Path
    processes: dict[str, FakeProcess] = attrs.field(factory=dict)
    exits: dict[str, ExitStatus] = attrs.field(factory=dict)
    calls: list[str] = attrs.field(factory=list)
    created_at: list[float] = attrs.field(factory=list)  # trio clock, per create
    create_error: str = ""
    deadly: frozenset[int] = frozenset({signal.SIGKILL, signal.SIGTERM})
    next_pid: int = 1000
    start_gate: trio.Event | None = None  # set: `start` waits for it once the process runs
    start_reached: trio.Event = attrs.field(factory=trio.Event)

    # test helpers
    def exit(self, container_id: str, code: int) -> None:
        """The container's process ends (by itself or of a signal); its monitor records it."""
        process = self.processes[container_id]
        process.status = "stopped"
        self.exits[container_id] = ExitStatus(code=code, recorded_at=time.time())
        process.watch.exited.set()

    def lose(self, container_id: str) -> None:
        """The monitor and the process vanish with no exit record (a kill -9 of conmon)."""
        process = self.processes.pop(container_id)
        process.watch.exited.set()

    def status(self, container_id: str) -> str:
        process = self.processes.get(container_id)
        return process.status if process is not None else "gone"

    # the protocol
    async def reset(self, target: RuntimeTarget) -> None:
        self.exits.pop(target.id, None)
        await self.delete(target)

    async def create(self, target: RuntimeTarget, options: LaunchOptions) -> Created:
        self.calls.append("create")
        self.created_at.append(trio.current_time())
        if self.create_error:
            raise RuntimeCreateFailed(self.create_error)
        self.next_pid += 2
        watch = FakeWatch(self.next_pid - 1)
        self.processes[target.id] = FakeProcess(self.next_pid, watch, deadly=self.deadly)
        return Created(pid=self.next_pid, monitor_pid=watch.monitor_pid, watch=watch)

    async def start(self, target: RuntimeTarget) -> None:
        self.calls.append("start")
        self.processes[target.id].status = "running"
        if self.start_gate is not None:  # the process runs; `crun start` has not returned
            self.start_reached.set()
            await self.start_gate.wait()

    async def kill(self, target: RuntimeTarget, sig: int) -> None:
        self.calls.append(f"kill {sig}")
        process = self.processes.get(target.id)
        if process is None or process.status not in ("running", "paused"):
            raise ContainerGone("container not running")
        if process.status == "paused":
            process.pending.append(sig)
        elif sig in process.deadly:
            self.exit(target.id, 128 + sig)

    async def kill_process(self, pid: int) -> None:
        self.calls.append(f"kill pid {pid}")

    async def pause(self, target: RuntimeTarget) -> None:
        self.calls.append("pause")
        self.processes[target.id].status = "paused"

    async def resume(self, target: RuntimeTarget) -> None:
        self.calls.append("resume")
        process = self.processes[target.id]
        process.status = "running"
        for sig in process.pending:
            if sig in process.deadly and process.status == "running":
                self.exit(target.id, 128 + sig)
        process.pending.clear()

    async def update(self, target: RuntimeTarget, resources: Mapping[str, Any], *,
                     unlimited_pids: bool = False) -> None:
        self.calls.append("update")

    async def resize(self, target: RuntimeTarget, height: int, width: int) -> None:
        self.calls.append(f"resize {height}x{width}")

    async def reopen_log(self, target: RuntimeTarget) -> bool:
        self.calls.append("reopen_log")
        return True

    async def delete(self, target: RuntimeTarget) -> None:
        self.calls.append("delete")
        process = self.processes.pop(target.id, None)
        if process is not None and process.status in ("running", "paused"):
            self.exits[target.id] = ExitStatus(code=137, recorded_at=time.time())
            process.watch.exited.set()

    async def release(self, target: RuntimeTarget) -> None:
        self.calls.append("release")

    async def forget(self, container_id: str) -> None:
        self.calls.append(f"forget {container_id}")

    async def state(self, target: RuntimeTarget) -> RuntimeState | None:
        process = self.processes.get(target.id)
        return None if process is None else RuntimeState(process.status, process.pid)

    async def frozen(self, target: RuntimeTarget) -> bool | None:
        process = self.processes.get(target.id)
        return None if process is None else process.status == "paused"

    async def exit_status(self, target: RuntimeTarget) -> ExitStatus:
        return self.exits.get(target.id, ExitStatus(code=None))

    async def adopt(self, target: RuntimeTarget, monitor_pid: int) -> ExitWatch | None:
        process = self.processes.get(target.id)
        if process is None or process.watch.exited.is_set():
            return None
        # a new moord gets a new handle on the same monitor
        process.watch = FakeWatch(process.watch.monitor_pid, process.watch.exited)
        return process.watch

    def command_line(self, runtime: str) -> OCIRuntime:
        return OCIRuntime(runtime, "/bin/false", self.tmp / runtime)


# --- fakes of the other services ---------------------------------------------------------

@attrs.define
class FakeImage:
    id: str = "sha256:" + "1" * 64
    config: ImageConfig = attrs.field(factory=lambda: ImageConfig(cmd=["sleep", "60"]))


@attrs.define
class FakeImages:
    image: FakeImage = attrs.field(factory=FakeImage)

    def resolve(self, ref: str) -> FakeImage:
        if ref != "busybox":
            raise NotFound(f"No such image: {ref}")
        return self.image

    def get(self, image_id: str) -> FakeImage | None:
        return self.image if image_id == self.image.id else None

    async def gc(self, in_use: Any) -> int:
        return 0


@attrs.define
class FakeBundles:
    prepared: int = 0

    async def prepare(self, c: Container, paths: Any, **kwargs: Any) -> None:
        self.prepared += 1

    async def unmount(self, paths: Any) -> None:
        pass


@attrs.define
class FakeVolumes:
    async def claim(self, container_id: str, requests: Any) -> list[Any]:
        return []

    async def release(self, container_id: str, mounts: Any, *, remove_anonymous: bool) -> None:
        pass

    async def unmount_after_stop(self, container_id: str, mounts: Any) -> None:
        pass


@attrs.define
class FakeNetworks:
    attached: set[str] = attrs.field(factory=set)
    restored: list[str] = attrs.field(factory=list)

    def validate_container_networking(self, **kwargs: Any) -> tuple[Any, list[str]]:
        return None, []

    async def attach(self, info: Any) -> Any:
        self.attached.add(info.id)
        return object()

    async def detach(self, container_id: str) -> None:
        self.attached.discard(container_id)

    async def rename(self, container_id: str, name: str) -> None:
        pass

    async def restore(self, container_ids: list[str]) -> None:
        self.restored += container_ids


@attrs.define
class FakeStore:
    """The record store without files: what was saved, as a copy (a crash loses the rest)."""

    saved: dict[str, Container] = attrs.field(factory=dict)

    def load_all(self) -> dict[str, Container]:
        return {k: copy.deepcopy(v) for k, v in self.saved.items()}

    async def save(self, key: str, record: Container) -> None:
        self.saved[key] = copy.deepcopy(record)

    async def delete(self, key: str) -> None:
        self.saved.pop(key, None)


@attrs.frozen
class DiscardingDriver:
    name: str = "json-file"
    readable: bool = False
    ships: bool = False

    def validate(self, options: Mapping[str, str]) -> Mapping[str, str]:
        return dict(options)

    async def ship(self, container: LoggedContainer, records: Sequence[LogRecord]) -> None:
        return None


@attrs.define
class Host:
    """One moord's worth of fakes; `manager()` makes a daemon's manager over them (again
    after a crash: the store and the runtime's processes outlive it)."""

    tmp: Path
    runtime: FakeRuntime
    store: FakeStore = attrs.field(factory=FakeStore)
    networks: FakeNetworks = attrs.field(factory=FakeNetworks)
    bundles: FakeBundles = attrs.field(factory=FakeBundles)

    def manager(self) -> ContainerManager:
        config = DaemonConfig(data_root=self.tmp / "data", exec_root=self.tmp / "run",
                              durable_store=False)
        layout = CgroupLayout(version=2, hybrid=False, v2_controllers=(), v1_mounts=(),
                              unified_mount=None)
        profile = HostProfile(
            cgroups=layout, runtimes={"crun": RuntimeInfo("crun", "/bin/false", "1.8", True)},
            default_runtime="crun", conmon_path="/bin/false", conmon_version="2.1",
            init_path="", seccomp_profile="", kernel_version="6.1", operating_system="Linux",
            os_version="", architecture="x86_64", boot_id=BOOT)
        table = ContainerTable(cast(Any, self.store))
        table.load()
        runtime: ContainerRuntime = self.runtime
        return ContainerManager(
            config, profile, cast(Any, FakeImages()), table, cast(Any, self.bundles), runtime,
            EventBus(), {"json-file": DiscardingDriver()}, volumes=cast(Any, FakeVolumes()),
            networks=cast(Any, self.networks))


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path, FakeRuntime(tmp_path))


@attrs.define
class Daemon:
    """A running manager (its `run` in a nursery), like moord's."""

    m: ContainerManager
    nursery: trio.Nursery

    def events(self, c: Container | None = None) -> list[str]:
        return [e.action for e in self.m.events.history if c is None or e.actor_id == c.id]

    def crash(self) -> None:
        """moord dies (kill -9): its tasks end, the monitors and containers live on."""
        self.nursery.cancel_scope.cancel()


async def _daemon(host: Host, nursery: trio.Nursery) -> Daemon:
    m = host.manager()
    await nursery.start(m.run)
    return Daemon(m, nursery)


async def _settle() -> None:
    """Let every task that can run, run (the mock clock does not move)."""
    await trio.testing.wait_all_tasks_blocked()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds. Polled in small steps: on the autojump clock a single
    long deadline would pass at once while the manager waits for a worker thread."""
    with trio.fail_after(600):
        while not condition():  # noqa: ASYNC110 (see above)
            await trio.sleep(0.01)


async def _running(m: ContainerManager, policy: RestartPolicy | None = None,
                   **spec: Any) -> Container:
    c, _ = await m.create(None, ContainerSpec(image="busybox", **spec),
                          HostSpec(restart_policy=policy or RestartPolicy()))
    await m.start(c)
    return c


@pytest.fixture
async def daemon(host: Host) -> AsyncIterator[Daemon]:
    async with trio.open_nursery() as nursery:
        yield await _daemon(host, nursery)
        nursery.cancel_scope.cancel()


# --- create, start, exit, restart policy -------------------------------------------------------

async def test_create_start_and_an_exit_of_its_own(daemon: Daemon, host: Host,
                                                   autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c, warnings = await m.create("web", ContainerSpec(image="busybox"), HostSpec())
    assert warnings == []
    assert (c.name, c.state.status, c.path, c.args) == ("web", Status.CREATED, "sleep", ["60"])
    assert host.store.saved[c.id].name == "web"
    await m.start(c)
    assert c.state.status is Status.RUNNING
    assert c.state.pid > 0
    assert c.state.conmon_pid > 0
    assert c.state.boot_id == BOOT
    assert host.runtime.calls == ["delete", "create", "start"]
    assert c.id in host.networks.attached
    assert host.store.saved[c.id].state.status is Status.RUNNING  # persisted before announced
    host.runtime.exit(c.id, 3)
    result = await m.wait(c, "not-running")
    assert result.status_code == 3
    assert (c.state.status, c.state.exit_code, c.state.stop_reason) == (
        Status.EXITED, 3, StopReason.EXITED)
    assert not c.state.manually_stopped
    assert c.id not in host.networks.attached
    assert host.store.saved[c.id].state.status is Status.EXITED
    assert daemon.events(c) == ["create", "start", "die"]
    die = daemon.m.events.history[-1]
    assert (die.attributes["exitCode"], die.attributes["reason"]) == ("3", "exited")


async def test_on_failure_restarts_with_a_doubling_back_off_up_to_its_count(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m, RestartPolicy("on-failure", 2))
    for run in range(3):
        await _until(lambda: c.state.status is Status.RUNNING)
        assert len(host.runtime.created_at) == run + 1
        host.runtime.exit(c.id, 1)
        await _settle()
    assert (await m.wait(c, "")).status_code == 1
    assert c.state.status is Status.EXITED
    assert c.state.restart_count == 2
    starts = host.runtime.created_at
    assert len(starts) == 3
    assert starts[1] - starts[0] == pytest.approx(0.1, abs=0.02)
    assert starts[2] - starts[1] == pytest.approx(0.2, abs=0.02)
    # a policy's restart is announced by its `start` alone, as dockerd does
    assert daemon.events(c) == ["create", "start", "die", "start", "die", "start", "die"]


async def test_a_user_start_does_not_wait_for_the_back_off(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    m.config.restart_delay_initial = 30.0
    c = await _running(m, RestartPolicy("always"))
    host.runtime.exit(c.id, 0)
    await _settle()
    assert c.state.status is Status.RESTARTING
    before = trio.current_time()
    await m.start(c)
    assert c.state.status is Status.RUNNING
    assert trio.current_time() == before
    await trio.sleep(60)  # the cancelled back-off starts nothing more
    assert len(host.runtime.created_at) == 2


async def test_a_failed_create_records_dockers_exit_code(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c, _ = await m.create(None, ContainerSpec(image="busybox", cmd=["nope"]), HostSpec())
    host.runtime.create_error = 'executable file `nope` not found in $PATH'
    with pytest.raises(InvalidParameter, match='exec: "nope": executable file not found'):
        await m.start(c)
    assert (c.state.status, c.state.exit_code) == (Status.CREATED, 127)
    assert "delete" in host.runtime.calls[-1]
    assert c.id not in host.networks.attached


# --- stop and kill ----------------------------------------------------------------------------

async def test_stop_sends_the_stop_signal_then_sigkill_after_the_grace_period(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    host.runtime.deadly = frozenset({signal.SIGKILL})  # a shell as PID 1 ignores SIGTERM
    m = daemon.m
    c = await _running(m, RestartPolicy("always"))
    before = trio.current_time()
    await m.stop(c, grace=5)
    assert trio.current_time() - before == pytest.approx(5, abs=0.01)
    assert host.runtime.calls[-3:] == ["kill 15", "kill 9", "delete"]
    assert (c.state.status, c.state.exit_code, c.state.stop_reason) == (
        Status.EXITED, 137, StopReason.USER)
    assert c.state.manually_stopped  # and so `always` does not restart it
    assert daemon.events(c)[-4:] == ["kill", "kill", "die", "stop"]
    await trio.sleep(30)
    assert c.state.status is Status.EXITED


async def test_stop_of_a_container_that_heeds_sigterm_needs_no_sigkill(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m, stop_timeout=30)
    before = trio.current_time()
    await m.stop(c)
    assert trio.current_time() == before
    assert "kill 9" not in host.runtime.calls
    assert (c.state.exit_code, c.state.stop_reason) == (143, StopReason.USER)
    with pytest.raises(NotModified):
        await m.stop(c)


async def test_a_paused_container_is_thawed_to_take_the_stop_signal(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m)
    await m.pause(c)
    await m.stop(c)
    assert host.runtime.calls[-3:] == ["kill 15", "resume", "delete"]
    assert (c.state.status, c.state.exit_code) == (Status.EXITED, 143)


async def test_kill_with_sigkill_and_with_a_signal_the_container_survives(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m, RestartPolicy("unless-stopped"))
    await m.kill(c, "SIGHUP")  # survived: changes nothing
    await _settle()
    assert c.state.status is Status.RUNNING
    await m.kill(c, None)  # SIGKILL by default
    assert (c.state.status, c.state.exit_code, c.state.stop_reason) == (
        Status.EXITED, 137, StopReason.USER)
    with pytest.raises(Conflict, match="is not running"):
        await m.kill(c, None)
    assert daemon.events(c)[-3:] == ["kill", "kill", "die"]
    assert [e.attributes["signal"] for e in m.events.history if e.action == "kill"] == ["1", "9"]
    await trio.sleep(30)
    assert c.state.status is Status.EXITED  # `unless-stopped` respects the user's kill


async def test_a_signal_sent_while_the_start_finishes_is_delivered(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    """The process runs (and may print) before `crun start` returns; a signal the docker
    CLI proxies then waits for the start, as dockerd's kill waits on the container's lock."""
    m = daemon.m
    c, _ = await m.create(None, ContainerSpec(image="busybox"), HostSpec())
    host.runtime.start_gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(m.start, c)
        await host.runtime.start_reached.wait()
        assert c.state.status is Status.CREATED
        nursery.start_soon(m.kill, c, "SIGTERM")
        await _settle()
        assert "kill 15" not in host.runtime.calls  # waits for the start
        host.runtime.start_gate.set()
    calls = host.runtime.calls
    assert calls[calls.index("start") + 1] == "kill 15"  # delivered right after the start
    await _until(lambda: c.state.status is Status.EXITED)
    assert c.state.exit_code == 143


async def test_a_user_signal_the_container_dies_of_is_a_user_stop(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    host.runtime.deadly = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1})
    m = daemon.m
    c = await _running(m, RestartPolicy("always"))
    await m.kill(c, "SIGUSR1")
    await _settle()
    assert (c.state.status, c.state.exit_code, c.state.stop_reason) == (
        Status.EXITED, 128 + signal.SIGUSR1, StopReason.USER)
    await trio.sleep(30)
    assert c.state.status is Status.EXITED  # `always` respects the user's stop


async def test_stopping_a_restarting_container_cancels_the_restart(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m, RestartPolicy("always"))
    host.runtime.exit(c.id, 0)
    await _settle()
    assert c.state.status is Status.RESTARTING
    await m.stop(c)
    assert (c.state.status, c.state.stop_reason) == (Status.EXITED, StopReason.USER)
    await trio.sleep(30)
    assert len(host.runtime.created_at) == 1
    assert daemon.events(c)[-1] == "stop"


# --- pause, remove, health -----------------------------------------------------------------

async def test_pause_and_unpause(daemon: Daemon, host: Host,
                                 autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m)
    await m.pause(c)
    assert c.state.status is Status.PAUSED
    assert host.runtime.status(c.id) == "paused"
    assert host.store.saved[c.id].state.status is Status.PAUSED
    with pytest.raises(Conflict, match="already paused"):
        await m.pause(c)
    with pytest.raises(Conflict, match="cannot start a paused container"):
        await m.start(c)
    await m.unpause(c)
    assert c.state.status is Status.RUNNING
    with pytest.raises(Conflict, match="is not paused"):
        await m.unpause(c)
    assert daemon.events(c)[-2:] == ["pause", "unpause"]


async def test_remove(daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m)
    with pytest.raises(Conflict, match="container is running"):
        await m.remove(c)
    removed = m.live_of(c).removed
    await m.remove(c, force=True)
    assert removed.event.is_set()
    assert removed.exit_code == 137
    assert c.id not in host.store.saved
    with pytest.raises(NotFound):
        m.get(c.id)
    assert host.runtime.calls[-2:] == ["delete", "release"]
    assert daemon.events(c)[-1] == "destroy"
    assert not (m.paths(c).root).exists()


async def test_auto_remove_after_the_exit(daemon: Daemon, host: Host,
                                          autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c, _ = await m.create(None, ContainerSpec(image="busybox"), HostSpec(auto_remove=True))
    await m.start(c)
    waiting = m.live_of(c).removed
    host.runtime.exit(c.id, 0)
    await _until(waiting.event.is_set)
    assert c.id not in host.store.saved
    assert daemon.events(c)[-2:] == ["die", "destroy"]


async def test_health_on_failure_kill_lets_on_failure_restart_it(
        daemon: Daemon, host: Host, autojump_clock: trio.testing.MockClock) -> None:
    m = daemon.m
    c = await _running(m, RestartPolicy("on-failure"), health_on_failure="kill")
    m.health_failed(c)
    await _until(lambda: len(host.runtime.created_at) == 2 and c.state.status is Status.RUNNING)
    assert c.state.restart_count == 1
    die = [e for e in m.events.history if e.action == "die"][-1]
    assert (die.attributes["exitCode"], die.attributes["reason"]) == ("137", "health")


# --- a crash of moord ---------------------------------------------------------------------

async def test_a_new_daemon_re_adopts_what_ran_and_records_what_ended_meanwhile(
        host: Host, autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            first = await _daemon(host, nursery)
            kept = await _running(first.m)
            ended = await _running(first.m, RestartPolicy("on-failure"))
            lost = await _running(first.m)
            paused = await _running(first.m)
            await first.m.pause(paused)
            first.crash()
        # while moord is away: one exits, one loses its monitor, one is thawed by hand
        host.runtime.exit(ended.id, 2)
        host.runtime.lose(lost.id)
        host.runtime.processes[paused.id].status = "running"

        second = await _daemon(host, outer)
        m = second.m
        again = {c.name: c for c in m.all()}
        k, e, lo, p = (again[c.name] for c in (kept, ended, lost, paused))
        assert k is not kept  # the records as they were saved, not the old objects
        assert (k.state.status, k.state.conmon_pid) == (Status.RUNNING, kept.state.conmon_pid)
        assert p.state.status is Status.RUNNING  # the freezer says so
        assert (lo.state.status, lo.state.exit_code, lo.state.stop_reason) == (
            Status.EXITED, 137, StopReason.MONITOR_LOST)
        await _until(lambda: e.state.status is Status.RUNNING)  # on-failure: after its back-off
        assert e.state.restart_count == 1
        assert [(ev.action, ev.attributes.get("exitCode"), ev.attributes.get("reason"))
                for ev in m.events.history if ev.actor_id == e.id] == [
            ("die", "2", "exited"), ("start", None, None)]
        # the live ones' networks are restored (the restarted one may have been attached
        # before: its back-off can end while recovery waits for a worker thread)
        assert {k.id, p.id} <= set(host.networks.restored)
        assert lo.id not in host.networks.restored
        # the re-adopted container's exit is seen by the new daemon
        host.runtime.exit(k.id, 0)
        assert (await m.wait(k, "")).status_code == 0
        assert k.state.stop_reason is StopReason.EXITED
        outer.cancel_scope.cancel()


async def test_an_orphaned_directory_is_swept_at_start_up(
        host: Host, tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    orphan = tmp_path / "data" / "containers" / ("f" * 64)
    (orphan / "bundle" / "rootfs").mkdir(parents=True)
    async with trio.open_nursery() as nursery:
        await _daemon(host, nursery)
        nursery.cancel_scope.cancel()
    assert not orphan.exists()
    assert host.runtime.calls == [f"forget {'f' * 64}"]
