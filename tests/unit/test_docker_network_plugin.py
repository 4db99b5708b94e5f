"""A NetworkDriver plugin through the network contract, against a fake plugin: what
CreateNetwork and ProgramExternalConnectivity carry, a network created once even
across a restart, and a Leave the plugin refuses not failing the container's stop;
an IpamDriver plugin's pool and gateway, in Docker's order.
(Join, which moves an interface into a namespace, is proved by
tests/integration/test_network_plugin.py.)"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from engine.docker_plugins.discovery import PluginDirs
from engine.docker_plugins.ipam import ipam_driver_table
from engine.docker_plugins.networks import RemoteNetworkDriver, network_driver_table
from engine.docker_plugins.registry import PluginRegistry
from engine.errors import NotFound
from engine.networks import remote_ipam
from engine.networks.model import IPAMConfig, NetworkRecord
from plugins.network_contract import (
    Endpoint,
    NetworkConfig,
    NetworkDriver,
    PublishedPort,
)
from tests.support.fake_plugin import serve_plugin

NETWORK = NetworkConfig(id="n" * 64, name="pnet", subnet=ipaddress.IPv4Network("10.9.0.0/24"),
                        gateway=ipaddress.IPv4Address("10.9.0.1"), options={"mode": "fast"})
ENDPOINT = Endpoint(id="e" * 64, container_id="c" * 64, netns="/nonexistent/netns", ifname="eth0",
                    address=ipaddress.IPv4Interface("10.9.0.2/24"))


def _answer(method: str, _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if method == "Plugin.Activate":
        return 200, {"Implements": ["NetworkDriver"]}
    if method in ("NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"):
        return 200, {"Err": "no such endpoint"}
    return 200, {}


def _driver(tmp_path: Path) -> RemoteNetworkDriver:
    registry = PluginRegistry(PluginDirs(tmp_path / "run", ()), timeout=10)
    driver = network_driver_table({}, registry, tmp_path / "state")["fake"]
    assert isinstance(driver, RemoteNetworkDriver)
    return driver


async def test_create_publish_and_a_refused_leave(tmp_path: Path) -> None:
    with serve_plugin(tmp_path / "run" / "fake.sock", _answer) as server:
        driver = _driver(tmp_path)
        assert isinstance(driver, NetworkDriver)
        await driver.create_network(NETWORK)
        await driver.create_network(NETWORK)  # restore at the next start: not asked again
        await _driver(tmp_path).create_network(NETWORK)  # another moord run: still known
        await driver.publish(NETWORK, ENDPOINT, [PublishedPort("tcp", "0.0.0.0", 8080, "10.9.0.2", 80)])
        await driver.leave(NETWORK, ENDPOINT)  # the plugin's refusal is logged, not raised
        await driver.delete_network(NETWORK)
    calls = [(m, b) for m, _h, b in server.requests]
    methods = [m for m, _b in calls]
    assert methods == ["Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork",
                       "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.Leave",
                       "NetworkDriver.DeleteEndpoint", "NetworkDriver.DeleteNetwork"]
    create = calls[2][1]
    assert create["NetworkID"] == "n" * 64
    assert create["IPv4Data"] == [{"AddressSpace": "LocalDefault", "Pool": "10.9.0.0/24",
                                   "AuxAddresses": {}, "Gateway": "10.9.0.1/24"}]
    assert create["IPv6Data"] == []
    assert create["Options"]["com.docker.network.generic"] == {"mode": "fast"}
    program = calls[3][1]["Options"]
    assert program["com.docker.network.portmap"] == [
        {"Proto": 6, "IP": "10.9.0.2", "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8080,
         "HostPortEnd": 8080}]


async def test_a_missing_network_plugin_is_dockers_lookup_error(tmp_path: Path) -> None:
    registry = PluginRegistry(PluginDirs(tmp_path / "run", ()), timeout=0.3)
    driver = RemoteNetworkDriver("absent", registry, state_dir=tmp_path)
    with pytest.raises(NotFound, match='plugin "absent" not found'):
        await driver.create_network(NETWORK)
    await driver.delete_network(NETWORK)  # the cleanup after it asks nothing (nor waits)


def _ipam_answer(gateway_in_data: bool) -> Any:
    def answer(method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "Plugin.Activate":
            return 200, {"Implements": ["IpamDriver"]}
        if method == "IpamDriver.RequestPool":
            data = {"com.docker.network.gateway": "10.7.0.254/24"} if gateway_in_data else {}
            return 200, {"PoolID": "p1", "Pool": body["Pool"] or "10.7.0.0/24", "Data": data}
        if method == "IpamDriver.RequestAddress":
            return 200, {"Address": (body["Address"] or "10.7.0.1") + "/24"}
        return 200, {}
    return answer


@pytest.mark.parametrize(("asked", "in_data", "gateway", "leased"), [
    (IPAMConfig(), False, "10.7.0.1", True),  # the driver picks the gateway
    (IPAMConfig(), True, "10.7.0.254", False),  # the pool's suggestion, nothing leased
    (IPAMConfig(subnet="10.7.0.0/24", gateway="10.7.0.9"), True, "10.7.0.9", True),  # asked for
])
async def test_an_ipam_plugin_grants_the_pool_and_the_gateway(
        tmp_path: Path, asked: IPAMConfig, in_data: bool, gateway: str, leased: bool) -> None:
    registry = PluginRegistry(PluginDirs(tmp_path / "run", ()), timeout=10)
    driver = ipam_driver_table(registry)["pools"]
    record = NetworkRecord(id="n" * 64, name="ipnet", driver="bridge", created=dt.datetime.now())
    with serve_plugin(tmp_path / "run" / "pools.sock", _ipam_answer(in_data)) as server:
        config = await remote_ipam.lease_pool(driver, record, [asked] if asked.subnet else [], {})
        await remote_ipam.release_pool(driver, record)
    assert (config.subnet, config.gateway, record.ipam_driver) == ("10.7.0.0/24", gateway, "pools")
    requests = [(m, b) for m, _h, b in server.requests]
    gateway_requests = [b for m, b in requests if m == "IpamDriver.RequestAddress"]
    assert len(gateway_requests) == (1 if leased else 0)
    if leased:
        assert gateway_requests[0]["Options"] == {"RequestAddressType": "com.docker.network.gateway"}
        assert ("IpamDriver.ReleaseAddress", {"PoolID": "p1", "Address": gateway}) in requests
    assert requests[-1] == ("IpamDriver.ReleasePool", {"PoolID": "p1"})
