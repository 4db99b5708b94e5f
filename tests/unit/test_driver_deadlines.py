"""plugins.deadlines: a driver that blocks or never answers stalls only its own request."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from plugins.deadlines import (
    DriverTimeout,
    network_drivers_with_deadlines,
    volume_drivers_with_deadlines,
)
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    NetworkConfig,
    NetworkDriverError,
    PublishedPort,
)
from plugins.volume_contract import (
    VolumeCapabilities,
    VolumeDriverError,
    VolumeInfo,
    VolumeNotFoundError,
)


class StuckVolumes:
    """`create` blocks its thread outright until released; `get` awaits forever;
    `remove` raises the contract's not-found; `list` reports which thread it ran on."""

    name = "stuck"
    scope = "local"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def capabilities(self) -> VolumeCapabilities:
        return VolumeCapabilities()

    def validate(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(options)

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        self.entered.set()
        while not self.release.is_set():
            time.sleep(0.01)  # noqa: ASYNC251 (the worst a driver can do: block its loop)
        return VolumeInfo(name=name, mountpoint="/x")

    async def remove(self, name: str) -> None:
        raise VolumeNotFoundError(name)

    async def mount(self, name: str, container_id: str) -> str:
        return "/x"

    async def unmount(self, name: str, container_id: str) -> None:
        return None

    async def path(self, name: str) -> str:
        return "/x"

    async def list(self) -> Sequence[VolumeInfo]:
        return [VolumeInfo(name=threading.current_thread().name, mountpoint="")]

    async def get(self, name: str) -> VolumeInfo:
        await trio.sleep_forever()
        raise AssertionError


async def test_a_blocked_driver_holds_neither_the_loop_nor_its_caller_forever() -> None:
    stuck = StuckVolumes()
    driver = volume_drivers_with_deadlines({"stuck": stuck}, 2.0)["stuck"]
    ticks = 0
    async with trio.open_nursery() as nursery:
        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.lowlevel.checkpoint()
        nursery.start_soon(tick)
        with pytest.raises(DriverTimeout) as caught:
            await driver.create("v", {})
        assert stuck.entered.is_set()
        nursery.cancel_scope.cancel()
    assert ticks > 10  # the trio thread kept running while the driver was blocked
    assert isinstance(caught.value, VolumeDriverError)
    assert "volume driver 'stuck' did not answer create within 2 s" in str(caught.value)
    stuck.release.set()


async def test_an_await_that_never_ends_is_cancelled_at_the_deadline() -> None:
    driver = volume_drivers_with_deadlines({"stuck": StuckVolumes()}, 0.5)["stuck"]
    with pytest.raises(DriverTimeout, match=r"did not answer get within 0\.5 s"):
        await driver.get("v")


async def test_answers_and_contract_errors_come_back_from_the_driver_thread() -> None:
    driver = volume_drivers_with_deadlines({"stuck": StuckVolumes()}, 5)["stuck"]
    listed = await driver.list()
    assert listed[0].name == "volume-driver-stuck"  # it ran on the driver's own thread
    with pytest.raises(VolumeNotFoundError):
        await driver.remove("v")
    assert driver.name == "stuck"
    assert driver.scope == "local"


class Recorder:
    """A network driver that spawns a task from setup and records where calls ran."""

    name = "rec"
    namespace = "private"
    uses_ipam = True
    singleton = False

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.spawned = threading.Event()

    async def setup(self, context: DriverContext) -> None:
        async def background() -> None:
            self.spawned.set()
        context.spawn(background)
        self.threads.append(threading.current_thread().name)

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(options)

    async def create_network(self, network: NetworkConfig) -> None:
        self.threads.append(threading.current_thread().name)
        raise NetworkDriverError("no such parent")

    async def delete_network(self, network: NetworkConfig) -> None: ...

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None: ...

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None: ...

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None: ...

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None: ...

    async def ready(self) -> None: ...

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return {}

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {}


async def test_network_calls_run_on_one_loop_of_the_drivers_own(tmp_path: Path) -> None:
    recorder = Recorder()
    driver = network_drivers_with_deadlines({"rec": recorder}, 5)["rec"]  # type: ignore[dict-item]
    engine_spawned: list[object] = []
    await driver.setup(DriverContext(prefix="t", state_dir=tmp_path, run_dir=tmp_path,
                                     spawn=engine_spawned.append))
    with pytest.raises(NetworkDriverError, match="no such parent"):
        await driver.create_network(NetworkConfig(id="n" * 64, name="n"))
    assert recorder.threads == ["network-driver-rec", "network-driver-rec"]
    await trio.to_thread.run_sync(recorder.spawned.wait, 5)
    assert recorder.spawned.is_set()
    assert not engine_spawned


async def test_each_loop_has_its_own_netlink_limiter() -> None:
    """Drivers run on loops of their own: a trio object shared between loops would
    wake tasks from the wrong thread."""
    from engine.kernel.netlink import netlink_limiter

    mine = netlink_limiter()
    assert netlink_limiter() is mine
    other = await trio.to_thread.run_sync(trio.run, _limiter_of_a_new_loop)
    assert other is not mine


async def _limiter_of_a_new_loop() -> object:
    from engine.kernel.netlink import netlink_limiter

    return netlink_limiter()


async def test_a_failing_background_task_leaves_the_driver_working(tmp_path: Path) -> None:
    recorder = Recorder()

    async def setup(context: DriverContext) -> None:
        async def broken() -> None:
            raise RuntimeError("boom")
        context.spawn(broken)
        await trio.sleep(0.1)  # let it fail on the driver's loop

    recorder.setup = setup  # type: ignore[method-assign]
    driver = network_drivers_with_deadlines({"rec": recorder}, 5)["rec"]  # type: ignore[dict-item]
    await driver.setup(DriverContext(prefix="t", state_dir=tmp_path, run_dir=tmp_path,
                                     spawn=lambda fn: None))
    with pytest.raises(NetworkDriverError, match="no such parent"):  # the loop still answers
        await driver.create_network(NetworkConfig(id="n" * 64, name="n"))

