"""NetworkService's rules without the kernel: drivers that only record calls, subnets
given so no host routes are read. Docker's words for what it refuses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import attrs
import pytest
import trio

from engine.errors import Conflict, Forbidden, InvalidParameter, NotFound
from engine.networks.catalog import now as ep_created
from engine.networks.model import (
    AttachmentRecord,
    ContainerInfo,
    EndpointRequest,
    IPAMConfig,
    NetworkRecord,
    PortRequest,
)
from engine.networks.ports import PortAllocator
from engine.networks.service import NetworkOptions, NetworkService, drivers_from_plugins
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriver,
    PublishedPort,
)


@attrs.define(eq=False)
class Recorder:
    name: str
    namespace: Literal["private", "host", "isolated"] = "private"
    uses_ipam: bool = True
    singleton: bool = False
    calls: list[str] = attrs.field(factory=list)

    async def setup(self, context: DriverContext) -> None:
        self.calls.append("setup")

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        if "bad" in options:
            raise InvalidNetworkOption("bad option")
        return dict(options)

    async def create_network(self, network: NetworkConfig) -> None:
        self.calls.append(f"create {network.name}")

    async def delete_network(self, network: NetworkConfig) -> None:
        self.calls.append(f"delete {network.name}")

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        self.calls.append("join")

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        self.calls.append("leave")

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        self.calls.append("publish")

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        self.calls.append("unpublish")

    async def ready(self) -> None:
        self.calls.append("ready")

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return dict(network.options)

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {}


OPTIONS = NetworkOptions(prefix="mu", default_bridge_subnet="10.213.0.0/24")


def drivers() -> dict[str, NetworkDriver]:
    return {
        "bridge": Recorder("bridge"),
        "host": Recorder("host", namespace="host", uses_ipam=False, singleton=True),
        "null": Recorder("null", namespace="isolated", uses_ipam=False, singleton=True),
        "macvlan": Recorder("macvlan"),
    }


@pytest.fixture
async def service(tmp_path: Path) -> NetworkService:
    svc = await NetworkService.open(data_root=tmp_path / "data", exec_root=tmp_path / "run",
                                    drivers=drivers(), durable=False,
                                    options=OPTIONS)
    svc._restored.set()
    return svc


async def test_predefined_networks_exist_and_persist(service: NetworkService, tmp_path: Path) -> None:
    names = sorted(r.name for r in service.list_networks())
    assert names == ["bridge", "host", "none"]
    bridge = service.get("bridge")
    assert bridge.pool is not None
    assert bridge.pool.subnet == "10.213.0.0/24"
    assert bridge.pool.gateway == "10.213.0.1"
    assert bridge.options["com.docker.network.bridge.name"] == "mu0"
    assert service.get("none").driver == "null"
    again = await NetworkService.open(data_root=tmp_path / "data", exec_root=tmp_path / "run",
                                      drivers=drivers(), durable=False,
                                      options=OPTIONS)
    assert again.get("bridge").id == bridge.id


async def test_default_bridge_ipv6_follows_the_daemon_settings(tmp_path: Path) -> None:
    async def bridge_with(**settings: object) -> NetworkRecord:
        options = attrs.evolve(OPTIONS, **settings)
        svc = await NetworkService.open(data_root=tmp_path / "data", exec_root=tmp_path / "run",
                                        drivers=drivers(), durable=False, options=options)
        return svc.get("bridge")

    bridge = await bridge_with(default_bridge_ipv6=True, default_bridge_subnet6="2001:db8:7::/64")
    assert bridge.enable_ipv6
    assert bridge.pool6 == IPAMConfig("2001:db8:7::/64", "2001:db8:7::1")
    assert bridge.pool is not None
    assert bridge.pool.subnet == "10.213.0.0/24"
    bridge = await bridge_with()  # ipv6 off again: IPv4 only
    assert not bridge.enable_ipv6
    assert bridge.pool6 is None
    assert len(bridge.ipam) == 1
    with pytest.raises(ValueError, match="needs ipv6 = true"):
        attrs.evolve(OPTIONS, default_bridge_subnet6="2001:db8:7::/64")
    with pytest.raises(ValueError, match="not an IPv6 subnet"):
        attrs.evolve(OPTIONS, default_bridge_ipv6=True, default_bridge_subnet6="10.0.0.0/8")


async def test_create_rules(service: NetworkService) -> None:
    record = await service.create_network(name="apps", ipam_configs=[IPAMConfig(subnet="10.213.5.0/24")],
                                          labels={"a": "b"})
    assert record.subnet_given
    assert service.get(record.id[:6]) is record
    with pytest.raises(Conflict, match="network with name apps already exists"):
        await service.create_network(name="apps", ipam_configs=[IPAMConfig(subnet="10.213.6.0/24")])
    with pytest.raises(Forbidden, match="Pool overlaps"):
        await service.create_network(name="x", ipam_configs=[IPAMConfig(subnet="10.213.5.128/25")])
    with pytest.raises(Forbidden, match='only one instance of "host" network is allowed'):
        await service.create_network(name="h2", driver="host")
    with pytest.raises(NotFound, match='plugin "nope" not found'):
        await service.create_network(name="n2", driver="nope")
    with pytest.raises(InvalidParameter, match="bad option"):
        await service.create_network(name="n3", options={"bad": "1"},
                                     ipam_configs=[IPAMConfig(subnet="10.213.7.0/24")])
    with pytest.raises(InvalidParameter, match="invalid name: name is empty"):
        await service.create_network(name="  ")
    # dockerd takes any name that isn't blank: spaces, slashes, any length
    for name in ("test 01", "a/b:c", "x" * 300):
        created = await service.create_network(name=name)
        assert service.get(name) is created
        await service.delete_network(name)
    with pytest.raises(InvalidParameter, match="one IPv6 subnet"):
        await service.create_network(name="n4", enable_ipv6=True, ipam_configs=[
            IPAMConfig(subnet="2001:db8:1::/64"), IPAMConfig(subnet="2001:db8:2::/64")])
    with pytest.raises(InvalidParameter, match="parent subnet is an IPv6 block"):
        await service.create_network(name="n5", enable_ipv6=True, ipam_configs=[
            IPAMConfig(subnet="2001:db8:1::/64", gateway="10.0.0.1")])
    with pytest.raises(Forbidden, match="bridge is a pre-defined network and cannot be removed"):
        await service.delete_network("bridge")
    with pytest.raises(NotFound, match="network nothere not found"):
        service.get("nothere")


async def test_ipv6_networks(service: NetworkService) -> None:
    record = await service.create_network(
        name="six", enable_ipv6=True,
        ipam_configs=[IPAMConfig(subnet="2001:db8:1::/64", ip_range="2001:db8:1::/96",
                                 gateway="2001:db8:1::ffff"),
                      IPAMConfig(subnet="10.213.20.0/24")])
    assert record.enable_ipv6
    assert record.subnet_given
    assert record.subnet6_given
    assert record.pool is not None
    assert record.pool.subnet == "10.213.20.0/24"
    assert record.pool6 is not None
    assert record.pool6.gateway == "2001:db8:1::ffff"
    config = service.catalog.network_config(record)
    assert str(config.subnet6) == "2001:db8:1::/64"
    assert str(config.gateway6) == "2001:db8:1::ffff"
    with pytest.raises(Forbidden, match="Pool overlaps"):
        await service.create_network(name="six2", enable_ipv6=True,
                                     ipam_configs=[IPAMConfig(subnet="2001:db8:1:0:1::/80")])
    # an IPv6 subnet of a network without IPv6 is ignored, as dockerd does
    plain = await service.create_network(
        name="plain", ipam_configs=[IPAMConfig(subnet="2001:db8:9::/64"),
                                    IPAMConfig(subnet="10.213.21.0/24")])
    assert not plain.enable_ipv6
    assert plain.pool6 is None
    assert service.catalog.network_config(plain).subnet6 is None


async def test_list_filters(service: NetworkService) -> None:
    await service.create_network(name="front", labels={"tier": "web"},
                                 ipam_configs=[IPAMConfig(subnet="10.213.8.0/24")])
    await service.create_network(name="back", driver="macvlan",
                                 ipam_configs=[IPAMConfig(subnet="10.213.9.0/24")])

    def names(**filters: list[str]) -> list[str]:
        return sorted(r.name for r in service.list_networks(filters))

    assert names(driver=["macvlan"]) == ["back"]
    assert names(label=["tier=web"]) == ["front"]
    assert names(label=["tier"]) == ["front"]
    assert names(name=["ron"]) == ["front"]
    assert names(type=["builtin"]) == ["bridge", "host", "none"]
    assert names(type=["custom"]) == ["back", "front"]
    assert names(dangling=["true"]) == ["back", "front"]
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        service.list_networks({"colour": ["red"]})
    assert await service.prune(labels=["tier=web"]) == ["front"]


async def test_container_networking_validation(service: NetworkService) -> None:
    apps = await service.create_network(name="apps", ipam_configs=[IPAMConfig(subnet="10.213.5.0/24")])
    auto = await service.create_network(name="auto", ipam_configs=[IPAMConfig(subnet="")],
                                        driver="bridge") if False else None
    assert auto is None
    networking, warnings = service.validate_container_networking(
        network_mode="default", endpoints={"default": EndpointRequest(aliases=("x",))},
        port_bindings={"80/tcp": [("127.0.0.1", "8080")]}, publish_all=True, exposed_ports=["53/udp"])
    assert warnings == []
    assert list(networking.networks) == [service.get("bridge").id]
    assert networking.networks[service.get("bridge").id].aliases == ("x",)
    assert networking.ports == [PortRequest(80, "tcp", "127.0.0.1", 8080), PortRequest(53, "udp")]

    multi, _ = service.validate_container_networking(
        network_mode="apps", endpoints={"apps": EndpointRequest(ipv4_address="10.213.5.9"),
                                        "bridge": EndpointRequest()})
    assert list(multi.networks) == [apps.id, service.get("bridge").id]
    assert multi.mode == apps.id

    shared, _ = service.validate_container_networking(network_mode="container:abc",
                                                      dns_search=["example.org"])
    assert shared.networks == {}
    assert shared.shared_with == "abc"
    assert shared.dns_search == ["example.org"]

    _, warnings = service.validate_container_networking(
        network_mode="host", port_bindings={"80/tcp": [("", "8080")]})
    assert warnings == ["Published ports are discarded when using host network mode"]

    refusals = [
        ({"network_mode": "nowhere"}, NotFound, "network nowhere not found"),
        ({"network_mode": "container:"}, InvalidParameter, "invalid container format"),
        ({"network_mode": "container"}, InvalidParameter, "invalid container format"),
        ({"network_mode": "bridge", "endpoints": {"bridge": EndpointRequest(links=("a:b:c",))}},
         InvalidParameter, "bad format for links: a:b:c"),
        ({"network_mode": "host", "endpoints": {"apps": EndpointRequest()}}, InvalidParameter,
         "multiple networks with one of the networks in host mode"),
        ({"network_mode": "bridge", "endpoints": {"bridge": EndpointRequest(ipv4_address="10.213.0.9")}},
         InvalidParameter, "user specified IP address is supported on user defined networks only"),
        ({"network_mode": "apps", "endpoints": {"apps": EndpointRequest(ipv4_address="10.9.9.9")}},
         InvalidParameter, "does not belong to any of this network's subnets"),
        ({"network_mode": "none", "endpoints": {"none": EndpointRequest(aliases=("a",))}},
         InvalidParameter, "network-scoped aliases are only supported for user-defined networks"),
        ({"network_mode": "bridge", "dns": ["not-an-ip"]}, InvalidParameter, "is not an ip address"),
        ({"network_mode": "bridge", "extra_hosts": ["nocolon"]}, InvalidParameter, "bad format"),
        ({"network_mode": "bridge", "mac_address": "zz"}, InvalidParameter, "invalid MAC address"),
    ]
    for kwargs, kind, message in refusals:
        with pytest.raises(kind, match=message):
            service.validate_container_networking(**kwargs)  # type: ignore[arg-type]


async def test_auto_subnets_need_user_subnets_for_static_ips(service: NetworkService,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    from engine.kernel import netlink

    host = netlink.HostNetworks((ipaddress.IPv4Network("172.18.3.0/24"),), (), ("eth9",))
    monkeypatch.setattr(netlink, "host_networks", lambda: host)
    record = await service.create_network(name="auto")
    assert record.pool is not None
    assert record.pool.subnet == "172.19.0.0/16"  # 172.18/16 overlaps a host route
    assert not record.subnet_given
    with pytest.raises(InvalidParameter, match="networks with user configured subnets"):
        service.validate_container_networking(
            network_mode="auto", endpoints={"auto": EndpointRequest(ipv4_address="172.18.0.9")})


def test_drivers_from_plugins_later_ones_win() -> None:
    first, second = Recorder("bridge"), Recorder("bridge")
    # pluggy returns the newest registration first
    assert drivers_from_plugins([[second], [first, Recorder("host")]])["bridge"] is second


async def test_endpoints_and_ports_of_an_ipv6_network(service: NetworkService) -> None:
    net = await service.create_network(
        name="six", enable_ipv6=True,
        ipam_configs=[IPAMConfig(subnet="2001:db8:1::/64"), IPAMConfig(subnet="10.213.30.0/24")])
    networking, _ = service.validate_container_networking(
        network_mode="six", endpoints={"six": EndpointRequest(ipv6_address="2001:db8:1::f00d",
                                                              link_local_ips=("169.254.8.8",))},
        port_bindings={"80/tcp": [("", "8080")], "81/tcp": [("::1", "8081")]})
    info = ContainerInfo("c" * 64, "web", "web", networking)
    attachments = service.attachments
    attachments.ports = PortAllocator(bind_check=False)
    ep = attachments.allocate_endpoint(info, net, networking.networks[net.id], "eth0",
                                       default_route=True)
    assert ep.address == "10.213.30.2/24"
    assert ep.address6 == "2001:db8:1::f00d/64"
    assert ep.gateway6 == "2001:db8:1::1"
    assert ep.link_local == ["169.254.8.8/16"]
    record = AttachmentRecord(info.id, "web", "web", "", ep_created(), endpoints=[ep])
    bound = attachments._allocate_ports(info, record, net, networking.ports)
    assert [(p.host_ip, p.host_port, p.container_ip) for p in bound] == [
        ("0.0.0.0", 8080, "10.213.30.2"), ("::", 8080, "2001:db8:1::f00d"),
        ("::1", 8081, "2001:db8:1::f00d")]
    # the same address can't be had twice; a released one can
    with pytest.raises(InvalidParameter, match="Address already in use"):
        attachments.allocate_endpoint(info, net, networking.networks[net.id], "eth0",
                                      default_route=True)
    service.catalog.release_addresses(net.id, ep.endpoint_id)
    again = attachments.allocate_endpoint(info, net, networking.networks[net.id], "eth0",
                                          default_route=True)
    assert again.address6 == ep.address6
    # an IPv6 host address needs an IPv6 network
    with pytest.raises(InvalidParameter, match="needs an IPv6 network"):
        service.validate_container_networking(network_mode="bridge",
                                              port_bindings={"80/tcp": [("::1", "8081")]})


@attrs.define(eq=False)
class SlowMaker(Recorder):
    """`create_network` waits until the test lets it finish."""

    release: trio.Event = attrs.field(factory=trio.Event)
    entered: trio.Event = attrs.field(factory=trio.Event)

    async def create_network(self, network: NetworkConfig) -> None:
        self.entered.set()
        await self.release.wait()
        await super().create_network(network)


async def test_a_driver_making_a_network_holds_no_other_network_change(tmp_path: Path) -> None:
    slow = SlowMaker("slow")
    svc = await NetworkService.open(data_root=tmp_path / "data", exec_root=tmp_path / "run",
                                    drivers={**drivers(), "slow": slow}, durable=False,
                                    options=OPTIONS)
    svc._restored.set()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(svc.create_network, name="pending", driver="slow",
                                   ipam_configs=[IPAMConfig("10.213.9.0/24")]))
        await slow.entered.wait()
        # another network is made meanwhile; the pending one's name and subnet are taken
        await svc.create_network(name="other")
        with pytest.raises(Conflict, match="network with name pending already exists"):
            await svc.create_network(name="pending")
        with pytest.raises(Forbidden, match="overlaps"):
            await svc.create_network(name="x", ipam_configs=[IPAMConfig("10.213.9.0/25")])
        assert "pending" not in {r.name for r in svc.list_networks()}  # not usable yet
        slow.release.set()
    assert "pending" in {r.name for r in svc.list_networks()}
