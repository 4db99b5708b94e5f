"""The network driver contract: what a network driver is told and what it must do.

moord owns the bookkeeping — network records, IP address management (IPAM), host port
allocation, the containers' network namespaces, name resolution — and a driver owns
the kernel objects that make a network real: links, addresses, routes, firewall rules.
The split keeps every driver small, and it is why a driver is handed finished values
(an address, a gateway, a host port) rather than asked to choose them.

Call order, for one network:

    setup(context)                      once, when moord starts, before anything below
    validate_options(options)           at `network create`, before the record is written
    create_network(network)             after `network create`; again at every moord start
    join(network, endpoint)             when a container starts (or is connected live)
    publish(network, endpoint, ports)   right after the join, on the container's primary network
    unpublish(network, endpoint)        when the container stops (or is disconnected)
    leave(network, endpoint)            after the unpublish
    delete_network(network)             at `network rm` / `network prune`
    ready()                             once at start-up, after moord re-joined what was running

Rules every driver keeps:

- **Idempotent.** `create_network`, `join` and `publish` must succeed when what they
  describe already exists (moord calls them again after a restart, when the kernel
  state survived) and must not duplicate anything; `delete_network`, `leave` and
  `unpublish` must succeed when it is already gone (after a host reboot nothing is left).
- **Never block the event loop.** Async methods run on moord's trio loop: blocking
  work (netlink, files, subprocesses) goes to `trio.to_thread.run_sync` or trio's
  process API. The synchronous methods must be quick and pure.
- **Name what you create with `context.prefix`** (links, firewall tables), so the
  engine's — and the tests' — clean-up can find it, and two daemons on one host
  (each with its own prefix) never touch each other's objects.
- **Errors:** raise `InvalidNetworkOption` for a bad user option (shown as a 400) and
  `NetworkDriverError` for a failure of the host (a 500); anything else is reported as
  a 500 with its text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import attrs

NamespaceMode = Literal["private", "host", "isolated"]


class InvalidNetworkOption(ValueError):
    """A `--opt` (or other network setting) the driver refuses; the message is for the user."""


class NetworkDriverError(RuntimeError):
    """The driver could not do what was asked (the host refused); the message says why."""


@attrs.frozen
class DriverContext:
    """What moord tells every driver once, at start-up.

    - `prefix`: every host object the driver creates is named with it (a bridge
      `<prefix>0`, a veth `<prefix>…`, an nftables table `<prefix>`); at most 7
      characters, so `<prefix>` plus 8 characters still fits Linux's 15-byte names.
    - `state_dir`: a directory of the driver's own under moord's data root (survives
      reboots); `run_dir`: one under moord's exec root (gone after a reboot).
    - `spawn`: run a background task in moord's network nursery (for a driver that must
      keep something running, such as a proxy); it is cancelled when moord stops.
    """

    prefix: str
    state_dir: Path
    run_dir: Path
    spawn: Callable[[Callable[[], Awaitable[None]]], None]


@attrs.frozen
class NetworkConfig:
    """One network as a driver sees it.

    `subnet` and `gateway` are None for drivers that don't use IPAM; `subnet6` and
    `gateway6` are set only on an `EnableIPv6` network. `options` are the ones
    `validate_options` returned at create time. `internal` networks get no route out of
    the host and no masquerading.
    """

    id: str
    name: str
    subnet: ipaddress.IPv4Network | None = None
    gateway: ipaddress.IPv4Address | None = None
    internal: bool = False
    options: Mapping[str, str] = attrs.field(factory=dict)
    subnet6: ipaddress.IPv6Network | None = None
    gateway6: ipaddress.IPv6Address | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]


@attrs.frozen
class Endpoint:
    """A container's attachment to one network.

    - `id`: 64 hex digits, unique per attachment; a driver may derive link names from it.
    - `netns`: the path of the container's network namespace (a bind-mounted nsfs file;
      open it and pass the fd as a netlink `net_ns_fd`, or `setns` to it on a worker
      thread and back in a `finally`).
    - `ifname`: the interface name inside the namespace (`eth0`, `eth1`, …).
    - `address`: the address with its prefix length, from IPAM (None without IPAM).
    - `gateway`: where the default route goes; None when this network must not carry
      the default route (an internal network, or not the container's primary network).
    - `mac`: the MAC address to give the interface.
    - `mtu`: 0 means the network's (or the driver's default).
    - `address6`, `gateway6`: the same for IPv6, on an `EnableIPv6` network only.
    - `link_local`: extra addresses to give the interface (`LinkLocalIPs`), with their
      prefix (/16 for IPv4, /64 for IPv6, as Docker).
    """

    id: str
    container_id: str
    netns: str
    ifname: str
    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    mac: str = ""
    mtu: int = 0
    options: Mapping[str, str] = attrs.field(factory=dict)
    address6: ipaddress.IPv6Interface | None = None
    gateway6: ipaddress.IPv6Address | None = None
    link_local: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()


@attrs.frozen
class PublishedPort:
    """One host port forwarded to the container: `host_ip` "0.0.0.0" means every IPv4
    address of the host (loopback included), "::" every IPv6 address; an IPv6 `host_ip`
    comes with the container's IPv6 address as `container_ip`. The host port is already
    allocated and reserved by moord, so the driver only makes traffic flow. (IPv6
    loopback, ::1, can't be DNATed by the kernel: moord forwards it itself, through the
    socket that reserves the port, so a driver leaves ::1 alone.)"""

    protocol: Literal["tcp", "udp"]
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@runtime_checkable
class NetworkDriver(Protocol):
    """A kind of network (`docker network create -d <name>`).

    Capabilities, read once:

    - `name`: the driver's name (`bridge`, `host`, `null`, …).
    - `namespace`: `"private"` — moord makes a network namespace per container and calls
      `join` for each network; `"host"` — the container shares the host's namespace;
      `"isolated"` — a fresh namespace with only `lo`, nothing joins. A container on a
      `host` or `isolated` network can be on no other network.
    - `uses_ipam`: moord allocates a subnet per network and an address per endpoint.
    - `singleton`: only the one predefined network of this driver exists (host, none);
      `network create -d` with it is refused.
    """

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> NamespaceMode: ...

    @property
    def uses_ipam(self) -> bool: ...

    @property
    def singleton(self) -> bool: ...

    async def setup(self, context: DriverContext) -> None:
        """Learn the prefix and directories; called once before any other async method."""
        ...

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        """Check and normalise `network create --opt` values; raise InvalidNetworkOption."""
        ...

    async def create_network(self, network: NetworkConfig) -> None:
        """Make the network exist in the kernel (idempotent)."""
        ...

    async def delete_network(self, network: NetworkConfig) -> None:
        """Remove what `create_network` made (idempotent)."""
        ...

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        """Give the container's namespace its interface on this network (idempotent)."""
        ...

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        """Take the interface away again (idempotent)."""
        ...

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        """Make `ports` (the endpoint's complete list) reach the container; replaces any
        earlier list for the endpoint."""
        ...

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        """Stop forwarding every port of the endpoint (idempotent)."""
        ...

    async def ready(self) -> None:
        """Start-up is over (every surviving endpoint was re-joined and re-published);
        a driver that batches work applies it now."""
        ...

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        """What `network inspect` shows as `Options` (typically the options as given
        plus the defaults the driver applied)."""
        ...

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        """What container inspect shows as the endpoint's `DriverOpts` (may be empty)."""
        ...


__all__ = [
    "DriverContext",
    "Endpoint",
    "InvalidNetworkOption",
    "NamespaceMode",
    "NetworkConfig",
    "NetworkDriver",
    "NetworkDriverError",
    "PublishedPort",
]
