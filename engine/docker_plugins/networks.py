"""A NetworkDriver plugin seen through `plugins.network_contract`, so `docker network
create -d NAME` with a Docker network plugin works like `-d bridge`.

moord keeps its IPAM: the network's subnet and gateway go to the plugin in
`CreateNetwork`'s `IPv4Data`/`IPv6Data`, each endpoint's address and MAC in
`CreateEndpoint`'s `Interface`. The calls, as dockerd makes them:

    create_network   NetworkDriver.CreateNetwork (once: moord remembers which networks
                     the plugin has, so a restart does not ask again)
    join             NetworkDriver.CreateEndpoint, NetworkDriver.Join; then the plugin's
                     interface (InterfaceName.SrcName) is moved into the container as
                     the endpoint's name, with Gateway/GatewayIPv6 and StaticRoutes
    publish          NetworkDriver.ProgramExternalConnectivity (the port bindings)
    unpublish        NetworkDriver.RevokeExternalConnectivity
    leave            the interface back to the host, NetworkDriver.Leave,
                     NetworkDriver.DeleteEndpoint
    delete_network   NetworkDriver.DeleteNetwork

`GetCapabilities` is asked at the first use.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
import trio

from engine.docker_plugins import interfaces
from engine.docker_plugins.adapter import Call, PluginAdapter, answer_or_nothing
from engine.docker_plugins.registry import NETWORK, PluginRegistry
from engine.docker_plugins.tables import DriverTable
from engine.kernel.netlink import netlink
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    NamespaceMode,
    NetworkConfig,
    NetworkDriver,
    NetworkDriverError,
    PublishedPort,
)

log = logging.getLogger(__name__)

GENERIC = "com.docker.network.generic"
_PROTOCOLS = {"tcp": 6, "udp": 17}


def _pool_data(subnet: Any, gateway: Any) -> list[dict[str, Any]]:
    if subnet is None:
        return []
    data: dict[str, Any] = {"AddressSpace": "LocalDefault", "Pool": str(subnet), "AuxAddresses": {}}
    if gateway is not None:
        data["Gateway"] = f"{gateway}/{subnet.prefixlen}"
    return [data]


def _routes(answer: Mapping[str, Any]) -> list[interfaces.StaticRoute]:
    return [interfaces.StaticRoute(str(r.get("Destination") or ""), int(r.get("RouteType") or 0),
                                   str(r.get("NextHop") or ""))
            for r in answer.get("StaticRoutes") or [] if r.get("Destination")]


def _bare(address: Any) -> str:
    """`Gateway` may come as `10.0.0.1` or `10.0.0.1/24`."""
    return str(address).split("/", 1)[0] if address else ""


@attrs.define(eq=False)
class _Known:
    """Which networks the plugin was asked to create, and each joined endpoint's first
    interface name: a small JSON file, so a restart neither creates twice nor loses
    the name an interface is given back under."""

    path: Path
    networks: set[str] = attrs.field(factory=set)
    interfaces: dict[str, str] = attrs.field(factory=dict)

    def load(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self.networks = set(doc.get("networks", []))
        self.interfaces = dict(doc.get("interfaces", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"networks": sorted(self.networks), "interfaces": self.interfaces}))
        tmp.replace(self.path)


@attrs.define(eq=False)
class RemoteNetworkDriver(PluginAdapter):
    """The network driver of the Docker plugin called `name`."""

    kind: ClassVar[str] = NETWORK
    noun: ClassVar[str] = "network"
    error: ClassVar[type[Exception]] = NetworkDriverError

    state_dir: Path = attrs.field(kw_only=True)
    _known: _Known | None = attrs.field(default=None, kw_only=True)

    @property
    def namespace(self) -> NamespaceMode:
        return "private"

    @property
    def uses_ipam(self) -> bool:
        return True

    @property
    def singleton(self) -> bool:
        return False

    async def setup(self, context: DriverContext) -> None:
        """Nothing to learn: the plugin names its own interfaces."""

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        return dict(options)  # the plugin judges them at CreateNetwork

    async def introduce(self, call: Call) -> None:
        """dockerd asks once; moorage networks are local whatever the plugin's scope."""
        answer = await answer_or_nothing(call, "NetworkDriver.GetCapabilities")
        if str(answer.get("Scope") or "local") != "local":
            log.info("network plugin %s has scope %s; moorage uses its networks locally",
                     self._name, answer.get("Scope"))

    async def _state(self) -> _Known:
        if self._known is None:
            known = _Known(self.state_dir / f"{self._name}.json")
            await trio.to_thread.run_sync(known.load)
            self._known = known
        return self._known

    async def _save(self) -> None:
        await trio.to_thread.run_sync((await self._state()).save)

    async def create_network(self, network: NetworkConfig) -> None:
        known = await self._state()
        if network.id in known.networks:
            return
        await self.call("CreateNetwork", {
            "NetworkID": network.id,
            "Options": {GENERIC: dict(network.options),
                        "com.docker.network.enable_ipv6": network.subnet6 is not None,
                        "com.docker.network.internal": network.internal},
            "IPv4Data": _pool_data(network.subnet, network.gateway),
            "IPv6Data": _pool_data(network.subnet6, network.gateway6)})
        known.networks.add(network.id)
        await self._save()

    async def delete_network(self, network: NetworkConfig) -> None:
        known = await self._state()
        if network.id not in known.networks:
            return  # its CreateNetwork failed (or never happened): nothing to delete
        await self.call("DeleteNetwork", {"NetworkID": network.id})
        known.networks.discard(network.id)
        await self._save()

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        if await netlink(interfaces.present, endpoint.netns, endpoint.ifname):
            return  # joined before moord restarted
        interface: dict[str, str] = {}
        if endpoint.address is not None:
            interface["Address"] = str(endpoint.address)
        if endpoint.address6 is not None:
            interface["AddressIPv6"] = str(endpoint.address6)
        if endpoint.mac:
            interface["MacAddress"] = endpoint.mac
        ids = {"NetworkID": network.id, "EndpointID": endpoint.id}
        created = await self.call("CreateEndpoint", {**ids, "Interface": interface,
                                                      "Options": dict(endpoint.options)})
        given = created.get("Interface") or {}
        answer = await self.call("Join", {**ids, "SandboxKey": endpoint.netns, "Options": {}})
        src = self.required(answer.get("InterfaceName") or {}, "SrcName", "Join")
        addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = [
            a for a in (endpoint.address, endpoint.address6) if a is not None]
        for key in ("Address", "AddressIPv6"):
            if key not in interface and given.get(key):
                addresses.append(ipaddress.ip_interface(given[key]))
        plan = interfaces.SandboxPlan(
            src_name=src, netns=endpoint.netns, ifname=endpoint.ifname,
            mac=endpoint.mac or str(given.get("MacAddress") or ""), mtu=endpoint.mtu,
            addresses=tuple(addresses + list(endpoint.link_local)),
            gateway=_bare(answer.get("Gateway")) or (str(endpoint.gateway) if endpoint.gateway else ""),
            gateway6=_bare(answer.get("GatewayIPv6"))
            or (str(endpoint.gateway6) if endpoint.gateway6 else ""),
            routes=_routes(answer))
        try:
            await netlink(interfaces.move_in, plan)
        except (OSError, LookupError) as exc:
            await self._leave_plugin(ids)
            raise NetworkDriverError(f"network plugin {self._name}: the interface {src}: {exc}") from None
        known = await self._state()
        known.interfaces[endpoint.id] = src
        await self._save()

    async def _leave_plugin(self, ids: Mapping[str, str]) -> None:
        for method in ("Leave", "DeleteEndpoint"):
            try:
                await self.call(method, ids)
            except NetworkDriverError as exc:
                log.warning("%s", exc)

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        known = await self._state()
        src = known.interfaces.pop(endpoint.id, "")
        if src:
            try:
                await netlink(interfaces.move_out, endpoint.netns, endpoint.ifname, src)
            except OSError as exc:
                log.warning("network plugin %s: giving %s back: %s", self._name, src, exc)
        await self._leave_plugin({"NetworkID": network.id, "EndpointID": endpoint.id})
        await self._save()

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        bindings = [{"Proto": _PROTOCOLS[p.protocol], "IP": p.container_ip, "Port": p.container_port,
                     "HostIP": p.host_ip, "HostPort": p.host_port, "HostPortEnd": p.host_port}
                    for p in ports]
        exposed = [{"Proto": _PROTOCOLS[p.protocol], "Port": p.container_port} for p in ports]
        await self.call("ProgramExternalConnectivity", {
            "NetworkID": network.id, "EndpointID": endpoint.id,
            "Options": {"com.docker.network.portmap": bindings,
                        "com.docker.network.endpoint.exposedports": exposed}})

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        try:
            await self.call("RevokeExternalConnectivity",
                             {"NetworkID": network.id, "EndpointID": endpoint.id})
        except NetworkDriverError as exc:
            log.warning("%s", exc)

    async def ready(self) -> None:
        """Nothing batched."""

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return dict(network.options)

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {}


def network_driver_table(builtins: dict[str, NetworkDriver], registry: PluginRegistry,
                         state_dir: Path) -> DriverTable[NetworkDriver]:
    """The pluggy network drivers, and a Docker network plugin for any other name."""
    return DriverTable(builtins, registry, NETWORK,
                       lambda name: RemoteNetworkDriver(name, registry, state_dir=state_dir))
