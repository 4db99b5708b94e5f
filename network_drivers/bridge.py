"""The `bridge` driver: a Linux bridge per network, a veth pair per container, nftables.

- A network is a bridge named `<prefix>0` (the default network) or `<prefix>-<id>`
  (or what `com.docker.network.bridge.name` says), holding the gateway address, up,
  with `route_localnet=1` (published ports on 127.0.0.1 are DNATed into it).
- A container joins with a veth pair: the host end `<prefix><endpoint id>` is enslaved
  to the bridge; the peer is created directly inside the container's namespace and
  renamed there (`eth0`, …), gets its MAC, MTU, address and — on the container's
  primary, non-internal network — the default route via the gateway.
- Outbound masquerading, port publishing (DNAT, loopback included) and isolation are
  one nftables table of our own, rendered from this driver's state (`nft.py`).
- IPv4 forwarding is switched on when the first non-internal network is made (as
  Docker does); it is a host-wide setting and is left on. The same for IPv6
  (`net.ipv6.conf.all.forwarding` and `.default.forwarding`) when the first non-internal
  IPv6 network is made.
- An IPv6 network's bridge has IPv6 switched on (`disable_ipv6=0`) and its IPv6 gateway
  address; the container's interface gets its IPv6 address (no duplicate address
  detection, so it is usable at once) and, on the primary network, the IPv6 default
  route. An interface without IPv6 addresses has IPv6 switched off, as Docker does.

No userland proxy process: DNAT serves every IPv4 case, including clients on the host
itself (127.0.0.1 through the output hook and `route_localnet`) and containers reaching
a published port through a host address (hairpin masquerading), and every IPv6 case
but ::1, which moord forwards itself (engine.networks.loopback6). An IPv6 client of an
IPv4-only container is not served: ports are published on IPv6 only for containers on
IPv6 networks.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Literal

import attrs
import trio

from engine.kernel import netlink
from network_drivers import nft
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriverError,
    PublishedPort,
)

log = logging.getLogger(__name__)

OPT_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
OPT_DEFAULT = "com.docker.network.bridge.default_bridge"
OPT_INHIBIT = "com.docker.network.bridge.inhibit_ipv4"
DEFAULT_MTU = 1500

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_BOOLEAN_OPTIONS = (OPT_MASQUERADE, OPT_ICC, OPT_DEFAULT, OPT_INHIBIT)


def _flag(options: Mapping[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None or value == "":
        return default
    return value.lower() in _TRUE


def bridge_mac(network_id: str) -> str:
    """A stable, locally administered MAC for the bridge itself."""
    digest = hashlib.sha256(network_id.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


@attrs.define
class _Net:
    config: NetworkConfig
    bridge: str
    mtu: int
    masquerade: bool


@attrs.define
class _Joined:
    network_id: str
    endpoint: Endpoint
    host_name: str
    ports: list[PublishedPort] = attrs.field(factory=list)


@attrs.define(eq=False)
class BridgeDriver:
    """See the module docstring; one instance per moord."""

    name: str = "bridge"
    namespace: Literal["private"] = "private"
    uses_ipam: bool = True
    singleton: bool = False
    _prefix: str = "moorage"
    _networks: dict[str, _Net] = attrs.field(factory=dict)
    _joined: dict[str, _Joined] = attrs.field(factory=dict)  # by endpoint id
    _ready: bool = False
    _dirty: bool = False
    _sync_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _forwarding_on: bool = False
    _forwarding6_on: bool = False

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def table(self) -> str:
        return self._prefix

    async def setup(self, context: DriverContext) -> None:
        self._prefix = context.prefix

    # names ------------------------------------------------------------------------
    def bridge_name(self, network: NetworkConfig) -> str:
        given = network.options.get(OPT_NAME)
        if given:
            return given
        return f"{self._prefix}-{network.id[:14 - len(self._prefix)]}"

    def host_link_name(self, endpoint: Endpoint) -> str:
        return f"{self._prefix}{endpoint.id[:15 - len(self._prefix)]}"

    def _peer_name(self, endpoint: Endpoint) -> str:
        return f"{self._prefix[:3]}p{endpoint.id[:10]}"

    # options ----------------------------------------------------------------------
    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        result = dict(options)
        name = result.get(OPT_NAME, "")
        if name and (len(name) > 15 or not all(c.isalnum() or c in "-_." for c in name)):
            raise InvalidNetworkOption(f"invalid bridge name {name!r}: at most 15 letters, "
                                       "digits, '-', '_' or '.'")
        if OPT_MTU in result:
            try:
                mtu = int(result[OPT_MTU])
            except ValueError:
                raise InvalidNetworkOption(
                    f"invalid value for {OPT_MTU}: {result[OPT_MTU]!r} is not a number") from None
            if mtu and not 68 <= mtu <= 65535:
                raise InvalidNetworkOption(f"invalid MTU {mtu}: must be between 68 and 65535")
        for key in _BOOLEAN_OPTIONS:
            value = result.get(key)
            if value is not None and value.lower() not in _TRUE + _FALSE:
                raise InvalidNetworkOption(f"invalid value for {key}: {value!r} is not a boolean")
        binding = result.get(OPT_HOST_BINDING)
        if binding:
            try:
                ipaddress.IPv4Address(binding)
            except ValueError:
                raise InvalidNetworkOption(f"invalid {OPT_HOST_BINDING}: {binding!r}") from None
        return result

    def _net(self, network: NetworkConfig) -> _Net:
        mtu = int(network.options.get(OPT_MTU) or 0) or DEFAULT_MTU
        return _Net(network, self.bridge_name(network), mtu,
                    _flag(network.options, OPT_MASQUERADE, True))

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return dict(network.options)

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {}

    # networks ---------------------------------------------------------------------
    async def create_network(self, network: NetworkConfig) -> None:
        if network.subnet is None or network.gateway is None:
            raise NetworkDriverError("a bridge network needs a subnet and a gateway")
        net = self._net(network)
        kind = await netlink.netlink(netlink.link_kind, net.bridge)
        if kind not in (None, "bridge"):
            raise NetworkDriverError(f"{net.bridge} exists on the host and is not a bridge")
        address = ipaddress.IPv4Interface(f"{network.gateway}/{network.subnet.prefixlen}")
        address6 = None
        if network.subnet6 is not None and network.gateway6 is not None:
            address6 = ipaddress.IPv6Interface(f"{network.gateway6}/{network.subnet6.prefixlen}")
        try:
            await netlink.netlink(partial(netlink.ensure_bridge, clear_ipv6=net.bridge.startswith(
                self._prefix)), net.bridge, address, net.mtu, bridge_mac(network.id), address6)
            await netlink.netlink(netlink.write_sysctl,
                                  f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
            if not network.internal and not self._forwarding_on:
                await netlink.netlink(netlink.write_sysctl, "net/ipv4/ip_forward", "1")
                self._forwarding_on = True
            if address6 is not None and not network.internal and not self._forwarding6_on:
                for which in ("default", "all"):
                    await netlink.netlink(netlink.write_sysctl,
                                          f"net/ipv6/conf/{which}/forwarding", "1")
                self._forwarding6_on = True
        except OSError as exc:
            raise NetworkDriverError(f"setting up bridge {net.bridge}: {exc}") from None
        self._networks[network.id] = net
        await self._changed()

    async def delete_network(self, network: NetworkConfig) -> None:
        net = self._networks.pop(network.id, None) or self._net(network)
        for eid in [e for e, j in self._joined.items() if j.network_id == network.id]:
            del self._joined[eid]
        try:
            await netlink.netlink(netlink.delete_link, net.bridge)
        except OSError as exc:
            raise NetworkDriverError(f"deleting bridge {net.bridge}: {exc}") from None
        await self._changed()

    # endpoints --------------------------------------------------------------------
    def _plan(self, net: _Net, endpoint: Endpoint) -> netlink.VethPlan:
        return netlink.VethPlan(
            host_name=self.host_link_name(endpoint),
            peer_name=self._peer_name(endpoint),
            bridge=net.bridge,
            netns=endpoint.netns,
            ifname=endpoint.ifname,
            mac=endpoint.mac,
            mtu=endpoint.mtu or net.mtu,
            address=endpoint.address,
            gateway=endpoint.gateway,
            address6=endpoint.address6,
            gateway6=endpoint.gateway6,
            link_local=endpoint.link_local,
        )

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        net = self._networks.get(network.id)
        if net is None:
            await self.create_network(network)
            net = self._networks[network.id]
        plan = self._plan(net, endpoint)
        try:
            # one worker-thread job: check, clear a half-made pair, make it
            await netlink.netlink(netlink.ensure_veth, plan)
        except OSError as exc:
            raise NetworkDriverError(
                f"connecting the container to {network.name} ({net.bridge}): {exc}") from None
        previous = self._joined.get(endpoint.id)
        self._joined[endpoint.id] = _Joined(network.id, endpoint, plan.host_name,
                                            previous.ports if previous else [])

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        joined = self._joined.pop(endpoint.id, None)
        host_name = joined.host_name if joined else self.host_link_name(endpoint)
        try:
            await netlink.netlink(netlink.remove_veth, host_name, endpoint.netns, endpoint.ifname)
        except OSError as exc:
            raise NetworkDriverError(f"removing {host_name}: {exc}") from None
        if joined is not None and joined.ports:
            await self._changed()

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        joined = self._joined.get(endpoint.id)
        if joined is None:
            raise NetworkDriverError(f"endpoint {endpoint.id[:12]} has not joined {network.name}")
        joined.ports = list(ports)
        await self._changed()

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        joined = self._joined.get(endpoint.id)
        if joined is None or not joined.ports:
            return
        joined.ports = []
        await self._changed()

    async def ready(self) -> None:
        self._ready = True
        await self._changed()

    # nftables ---------------------------------------------------------------------
    def ruleset(self) -> str:
        # sorted: the same state renders the same text whatever order it was rebuilt in
        bridges = sorted((nft.BridgeRules(n.bridge, n.config.subnet, n.config.internal, n.masquerade,
                                          n.config.subnet6)
                          for n in self._networks.values() if n.config.subnet is not None),
                         key=lambda b: b.bridge)
        ports = [p for j in self._joined.values() if j.network_id in self._networks
                 for p in j.ports]
        return nft.render_table(self.table, bridges, ports, prefix=self._prefix)

    async def _changed(self) -> None:
        """Re-render the table; concurrent changes share one load. Before `ready` the
        table loaded by the previous moord stays in place while state is rebuilt."""
        self._dirty = True
        if not self._ready:
            return
        async with self._sync_lock:
            if not self._dirty:
                return  # somebody else's load already included our change
            self._dirty = False
            try:
                await nft.apply(self.ruleset())
            except BaseException:
                self._dirty = True
                raise
