"""Network records and the networking part of containers, apart from Docker's JSON.

Three kinds of record, each with one owner:

- `NetworkRecord`: a network (`network create`), kept by `NetworkService` in
  `<data-root>/state/networks/<id>.json`.
- `ContainerNetworking`: how a container asked to be networked (modes, networks with
  aliases and static addresses, ports to publish, DNS settings), validated at create
  time and stored **in the container's record** by the container manager; `network
  connect/disconnect` change it through `ContainerDirectory.save_networking`.
- `AttachmentRecord`: what a running container actually got (its namespace, endpoint
  addresses, host ports), kept by `NetworkService` in `<exec-root>/endpoints/` (a
  tmpfs, like the kernel state it describes: a reboot clears both) from just before the
  kernel objects are made until they are gone, so a moord that died at any point can
  rebuild or clean up from it.

All are attrs classes that the engine's cattrs converter (`engine.store.converter`)
turns into JSON and back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Iterable
from typing import Protocol

import attrs

PREDEFINED = ("bridge", "host", "none")


def is_v6(address: str) -> bool:
    """Whether an address or subnet in text form is IPv6 (every IPv6 form has a colon)."""
    return ":" in address


@attrs.frozen
class IPAMConfig:
    """One entry of a network's IPAM configuration (Docker's `IPAM.Config[i]`)."""

    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = attrs.field(factory=dict)


@attrs.define
class NetworkRecord:
    id: str
    name: str
    driver: str
    created: dt.datetime
    scope: str = "local"
    ipam_driver: str = "default"
    ipam: list[IPAMConfig] = attrs.field(factory=list)  # the IPv4 entry, then the IPv6 one
    ipam_options: dict[str, str] | None = None  # None: the client sent none (shown as null)
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    labels: dict[str, str] = attrs.field(factory=dict)
    options: dict[str, str] = attrs.field(factory=dict)
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    config_only: bool = False
    config_from: str = ""
    subnet_given: bool = False  # the user chose the subnet (only then is `--ip` allowed)
    subnet6_given: bool = False  # the same for the IPv6 subnet and `--ip6`
    #: what an IPAM driver (`--ipam-driver`) must hear back: its pool's ID, the gateway it
    #: leased (engine/networks/remote_ipam.py); empty on moord's own IPAM
    ipam_lease: dict[str, str] = attrs.field(factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def pool(self) -> IPAMConfig | None:
        """The IPv4 entry of the IPAM configuration."""
        return next((c for c in self.ipam if not is_v6(c.subnet)), None)

    @property
    def pool6(self) -> IPAMConfig | None:
        """The IPv6 entry (only on `EnableIPv6` networks)."""
        return next((c for c in self.ipam if is_v6(c.subnet)), None)


@attrs.frozen
class EndpointRequest:
    """A container's wishes for one network (Docker's `EndpointSettings` as sent)."""

    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""
    ipv6_address: str = ""
    link_local_ips: tuple[str, ...] = ()
    mac_address: str = ""
    links: tuple[str, ...] = ()
    driver_opts: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class PortRequest:
    """One published port as asked: host port 0 means "any free one"; a start-end range
    means the first free one in it. `host_ip` "" means every address."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


@attrs.define
class ContainerNetworking:
    """How a container is networked; stored in the container's record.

    `mode` is `bridge`, `host`, `none`, a user network's ID (the first network, as
    asked at create time; informative) or `container:<id>` (it joins that container's
    namespace and has no network of its own); `networks` maps network IDs to requests, in
    interface order (eth0 first). It is empty only when every network was disconnected
    (the container then gets a namespace with just `lo`) or in `container:` mode.
    """

    mode: str = "bridge"
    networks: dict[str, EndpointRequest] = attrs.field(factory=dict)
    ports: list[PortRequest] = attrs.field(factory=list)
    dns: list[str] = attrs.field(factory=list)
    dns_search: list[str] = attrs.field(factory=list)
    dns_options: list[str] = attrs.field(factory=list)
    extra_hosts: list[str] = attrs.field(factory=list)

    @property
    def shared_with(self) -> str:
        """The container (its ID, or the name as given if it did not exist at create) whose
        network namespace this one joins (`--network container:<x>`); "" otherwise."""
        return self.mode.removeprefix("container:") if self.mode.startswith("container:") else ""


@attrs.frozen
class LinkedContainer:
    """A container that another links to on the default bridge (`--link name:alias`), as
    the network side needs it: for the linking one's /etc/hosts and DNS."""

    alias: str
    container_id: str
    name: str
    hostname: str


@attrs.frozen
class ContainerInfo:
    """What the network side needs to know about a container (built by the container
    manager from its record)."""

    id: str
    name: str
    hostname: str
    networking: ContainerNetworking
    domainname: str = ""
    running: bool = False
    links: tuple[LinkedContainer, ...] = ()  # legacy links, resolved to running containers
    joins: str = ""  # `container:` mode: the ID of the running container it joins
    joins_pid: int = 0  # and that container's pid (its namespace when it has no file)


class ContainerDirectory(Protocol):
    """The container manager, as `network connect/disconnect` and `network inspect` see it."""

    def find(self, ref: str) -> ContainerInfo:
        """The container named or ID'd by `ref`; raises `NotFound` ("No such container: x")."""
        ...

    def all(self) -> Iterable[ContainerInfo]:
        """Every container (for `network rm` of networks configured on stopped ones, etc.)."""
        ...

    def save_networking(self, container_id: str, networking: ContainerNetworking) -> Awaitable[None]:
        """Store a changed `ContainerNetworking` in the container's record (durably)."""
        ...


@attrs.define
class EndpointState:
    """One network attachment of a running container."""

    network_id: str
    endpoint_id: str
    ifname: str
    address: str = ""  # "172.18.0.2/16", "" without IPAM
    gateway: str = ""  # the network's gateway ("" without IPAM)
    address6: str = ""  # "2001:db8:1::2/64" on an IPv6 network, else ""
    gateway6: str = ""
    link_local: list[str] = attrs.field(factory=list)  # `LinkLocalIPs`, with their prefix
    default_route: bool = False  # this endpoint carries the container's default route
    mac: str = ""
    aliases: list[str] = attrs.field(factory=list)
    dns_names: list[str] = attrs.field(factory=list)
    static: bool = False  # the address was asked for (`--ip`)
    links: dict[str, str] = attrs.field(factory=dict)  # link alias -> the name it stands for

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def prefixlen(self) -> int:
        return int(self.address.split("/", 1)[1]) if "/" in self.address else 0

    @property
    def ip6(self) -> str:
        return self.address6.split("/", 1)[0]

    @property
    def prefixlen6(self) -> int:
        return int(self.address6.split("/", 1)[1]) if "/" in self.address6 else 0


@attrs.frozen
class PortState:
    """One host port bound to the container."""

    protocol: str
    host_ip: str  # "0.0.0.0" for every IPv4 address, "::" for every IPv6 one
    host_port: int
    container_port: int
    network_id: str
    container_ip: str


@attrs.define
class AttachmentRecord:
    """What a running container got; see the module docstring."""

    container_id: str
    name: str
    hostname: str
    netns: str  # a path, "host" or "" (a namespace the runtime makes)
    created: dt.datetime
    endpoints: list[EndpointState] = attrs.field(factory=list)
    ports: list[PortState] = attrs.field(factory=list)
    dns: list[str] = attrs.field(factory=list)  # upstream resolvers just for this container
    owned_netns: bool = False  # moord made the namespace file and removes it


@attrs.frozen
class Attachment:
    """What `NetworkService.attach` hands to the container manager for the start.

    - `network_ns`: for `SpecInputs.network_ns` — a path to join, "host", or "" (new);
    - `network_ns_owned`: for `SpecInputs.network_ns_owned`;
    - `hosts`, `resolv_conf`: the contents of the container's /etc/hosts and
      /etc/resolv.conf (`hostname` stays the container manager's business);
    - `record`: the endpoints and bound ports (for inspect, `ps` and `port`).
    """

    network_ns: str
    network_ns_owned: bool
    hosts: str
    resolv_conf: str
    record: AttachmentRecord
