"""No driver can stall moord: every async call to a driver runs on a thread of its own,
under a deadline.

A network or volume driver is code moord did not write. If one of its calls blocks
(a `time.sleep`, a synchronous socket, a lock that is never released) on moord's trio
thread, every request and every container stalls with it; if it only awaits forever,
the request that needed it never answers. So each driver gets a `DriverThread`: a
thread running a trio loop of its own, where all of that driver's async calls run (one
loop per driver keeps the driver's own trio objects — locks, sockets, spawned tasks —
on one loop). moord waits for each call from a worker thread of its own loop, under
`deadline` seconds: past it the call is cancelled inside the driver's loop, moord stops
waiting (abandoning the waiting thread if the driver is blocked outright) and the
request gets `DriverTimeout`, a `NetworkDriverError` / `VolumeDriverError` naming the
driver and the call. The waiting threads of each driver have a limiter of their own,
so a hung driver can exhaust neither trio's default thread pool nor another driver's.

The synchronous members of the contracts (`validate_options`, `network_options`,
`validate`, `capabilities`, the properties) are called directly: the contracts require
them to be quick and pure, and they are called from synchronous code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import attrs
import trio

from plugins.network_contract import (
    DriverContext,
    Endpoint,
    NamespaceMode,
    NetworkConfig,
    NetworkDriver,
    NetworkDriverError,
    PublishedPort,
)
from plugins.volume_contract import VolumeCapabilities, VolumeDriver, VolumeDriverError, VolumeInfo

T = TypeVar("T")
log = logging.getLogger(__name__)

#: seconds a driver call may take unless daemon.toml's `driver-timeout` says otherwise
#: (Docker's plugin client waits 30 s too)
DEFAULT_DEADLINE = 30.0
#: waiting threads per driver: calls beyond this many wait for one (still under the deadline)
WAITERS_PER_DRIVER = 16


class DriverUnavailable(NetworkDriverError, VolumeDriverError):
    """A driver could not be asked (moord answers 500 with this text)."""


class DriverTimeout(DriverUnavailable):
    """A driver did not answer within its deadline."""


@attrs.define(eq=False)
class DriverThread:
    """One driver's own trio loop, on a daemon thread started at the first call."""

    kind: str  # "network" or "volume", for messages
    name: str
    deadline: float
    _token: trio.lowlevel.TrioToken | None = None
    _nursery: trio.Nursery | None = None
    _starting: trio.Lock = attrs.field(factory=trio.Lock)
    _limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(WAITERS_PER_DRIVER))

    async def _ensure_started(self) -> trio.lowlevel.TrioToken:
        async with self._starting:
            if self._token is None:
                ready = threading.Event()
                thread = threading.Thread(target=trio.run, args=(self._main, ready),
                                          name=f"{self.kind}-driver-{self.name}", daemon=True)
                thread.start()
                await trio.to_thread.run_sync(ready.wait)
            assert self._token is not None
            return self._token

    async def _main(self, ready: threading.Event) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._token = trio.lowlevel.current_trio_token()
                self._nursery = nursery
                ready.set()
                await trio.sleep_forever()
        finally:
            self._token = self._nursery = None  # the next call starts a new loop

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        """`DriverContext.spawn` for this driver: a task on the driver's own loop (the
        driver calls it from its own calls, so from that loop). A task that fails is
        logged; it stops neither the loop nor the driver's other work."""
        assert self._nursery is not None

        async def guarded() -> None:
            try:
                await fn()
            except Exception:
                log.exception("a background task of %s driver %s failed", self.kind, self.name)

        self._nursery.start_soon(guarded)

    async def call(self, what: str, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run `fn(*args)` on the driver's loop and wait for it, at most `deadline` s."""
        token = await self._ensure_started()

        async def bounded() -> T:
            with trio.fail_after(self.deadline):
                return await fn(*args)

        def wait() -> T:
            return trio.from_thread.run(bounded, trio_token=token)

        # the driver's own loop cancels the call at the deadline; the outer one (a little
        # later) covers a driver that blocks its loop and so cannot even be cancelled
        with trio.move_on_after(self.deadline + 1):
            try:
                return await trio.to_thread.run_sync(wait, abandon_on_cancel=True,
                                                     limiter=self._limiter)
            except trio.TooSlowError:
                pass
            except trio.RunFinishedError:
                raise DriverUnavailable(f"{self.kind} driver {self.name!r}: its loop stopped during "
                                    f"{what}; the next call starts it again") from None
        raise DriverTimeout(f"{self.kind} driver {self.name!r} did not answer {what} "
                            f"within {self.deadline:g} s")


@attrs.define(eq=False)
class DeadlineNetworkDriver:
    """A `NetworkDriver` whose async calls run on the driver's own thread, with a deadline."""

    driver: NetworkDriver
    thread: DriverThread

    @property
    def name(self) -> str:
        return self.driver.name

    @property
    def namespace(self) -> NamespaceMode:
        return self.driver.namespace

    @property
    def uses_ipam(self) -> bool:
        return self.driver.uses_ipam

    @property
    def singleton(self) -> bool:
        return self.driver.singleton

    async def setup(self, context: DriverContext) -> None:
        context = attrs.evolve(context, spawn=self.thread.spawn)
        await self.thread.call("setup", self.driver.setup, context)

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        return self.driver.validate_options(options)

    async def create_network(self, network: NetworkConfig) -> None:
        await self.thread.call("create_network", self.driver.create_network, network)

    async def delete_network(self, network: NetworkConfig) -> None:
        await self.thread.call("delete_network", self.driver.delete_network, network)

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await self.thread.call("join", self.driver.join, network, endpoint)

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await self.thread.call("leave", self.driver.leave, network, endpoint)

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        await self.thread.call("publish", self.driver.publish, network, endpoint, ports)

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await self.thread.call("unpublish", self.driver.unpublish, network, endpoint)

    async def ready(self) -> None:
        await self.thread.call("ready", self.driver.ready)

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return self.driver.network_options(network)

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return self.driver.endpoint_options(network, endpoint)


@attrs.define(eq=False)
class DeadlineVolumeDriver:
    """A `VolumeDriver` whose async calls run on the driver's own thread, with a deadline."""

    driver: VolumeDriver
    thread: DriverThread

    @property
    def name(self) -> str:
        return self.driver.name

    @property
    def scope(self) -> str:
        return self.driver.scope

    def capabilities(self) -> VolumeCapabilities:
        return self.driver.capabilities()

    def validate(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(self.driver.validate(options))

    async def create(self, name: str, options: Mapping[str, str]) -> VolumeInfo:
        return await self.thread.call("create", self.driver.create, name, options)

    async def remove(self, name: str) -> None:
        await self.thread.call("remove", self.driver.remove, name)

    async def mount(self, name: str, container_id: str) -> str:
        return await self.thread.call("mount", self.driver.mount, name, container_id)

    async def unmount(self, name: str, container_id: str) -> None:
        await self.thread.call("unmount", self.driver.unmount, name, container_id)

    async def path(self, name: str) -> str:
        return await self.thread.call("path", self.driver.path, name)

    async def list(self) -> Sequence[VolumeInfo]:
        return await self.thread.call("list", self.driver.list)

    async def get(self, name: str) -> VolumeInfo:
        return await self.thread.call("get", self.driver.get, name)


def network_drivers_with_deadlines(drivers: Mapping[str, NetworkDriver],
                                   deadline: float) -> dict[str, NetworkDriver]:
    """Each driver behind its own thread and `deadline` (see the module docstring)."""
    return {name: DeadlineNetworkDriver(driver, DriverThread("network", name, deadline))
            for name, driver in drivers.items()}


def volume_drivers_with_deadlines(drivers: Mapping[str, VolumeDriver],
                                  deadline: float) -> dict[str, VolumeDriver]:
    """Each driver behind its own thread and `deadline` (see the module docstring)."""
    return {name: DeadlineVolumeDriver(driver, DriverThread("volume", name, deadline))
            for name, driver in drivers.items()}


__all__ = [
    "DEFAULT_DEADLINE",
    "DeadlineNetworkDriver",
    "DeadlineVolumeDriver",
    "DriverThread",
    "DriverTimeout",
    "DriverUnavailable",
    "network_drivers_with_deadlines",
    "volume_drivers_with_deadlines",
]
