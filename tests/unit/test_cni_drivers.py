"""The `cni`, `macvlan` and `ipvlan` drivers' options and the conflists they generate."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from network_drivers.cni.conflist_driver import CNIDriver
from network_drivers.cni.link_drivers import ipvlan_driver, macvlan_driver
from plugins.network_contract import DriverContext, Endpoint, InvalidNetworkOption, NetworkConfig


def test_link_driver_options_as_docker() -> None:
    assert macvlan_driver().validate_options({"parent": "eth0"}) == {"parent": "eth0"}
    assert ipvlan_driver().validate_options({"parent": "eth0", "ipvlan_mode": "l3"}) == {
        "parent": "eth0", "ipvlan_mode": "l3"}
    with pytest.raises(InvalidNetworkOption, match="-o parent=IFACE is required"):
        macvlan_driver().validate_options({})
    with pytest.raises(InvalidNetworkOption, match="ipvlan_mode 'l9' is not one of l2, l3, l3s"):
        ipvlan_driver().validate_options({"parent": "eth0", "ipvlan_mode": "l9"})
    with pytest.raises(InvalidNetworkOption, match="unknown option 'ipvlan_mode'"):
        macvlan_driver().validate_options({"parent": "eth0", "ipvlan_mode": "l2"})


async def test_macvlan_conflist_carries_moords_address_gateway_and_mac(tmp_path: Path) -> None:
    driver = macvlan_driver()
    await driver.setup(DriverContext(prefix="t", state_dir=tmp_path, run_dir=tmp_path,
                                     spawn=lambda fn: None))
    network = NetworkConfig(id="a" * 64, name="lan", options={"parent": "eth0"})
    endpoint = Endpoint(id="e" * 64, container_id="c", netns="/n", ifname="eth0",
                        address=ipaddress.IPv4Interface("10.1.2.3/24"),
                        gateway=ipaddress.IPv4Address("10.1.2.1"), mac="02:42:0a:01:02:03")
    conf = await driver._conflist(network, endpoint)
    assert json.loads(conf.to_json())["plugins"] == [{
        "type": "macvlan", "master": "eth0", "mode": "bridge", "mac": "02:42:0a:01:02:03",
        "ipam": {"type": "static", "addresses": [{"address": "10.1.2.3/24",
                                                  "gateway": "10.1.2.1"}],
                 "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]}}]
    # not the primary network: no gateway, so no default route
    side = await driver._conflist(network, Endpoint(
        id="f" * 64, container_id="c", netns="/n", ifname="eth1",
        address=ipaddress.IPv4Interface("10.1.2.4/24")))
    assert side.plugins[0]["ipam"] == {"type": "static", "addresses": [{"address": "10.1.2.4/24"}],
                                       "routes": []}


async def test_cni_driver_keeps_a_checked_copy_of_the_conflist(tmp_path: Path) -> None:
    driver = CNIDriver()
    with pytest.raises(InvalidNetworkOption, match=r"conflist=/path/to/file\.conflist is required"):
        driver.validate_options({})
    with pytest.raises(InvalidNetworkOption, match="must be an absolute path"):
        driver.validate_options({"conflist": "web.conflist"})
    await driver.setup(DriverContext(prefix="t", state_dir=tmp_path / "state", run_dir=tmp_path,
                                     spawn=lambda fn: None))
    source = tmp_path / "web.conflist"
    source.write_text('{"cniVersion": "1.0.0", "name": "web", "plugins": [{"type": "bridge"}]}')
    network = NetworkConfig(id="b" * 64, name="web", options={"conflist": str(source)})
    await driver.create_network(network)
    source.write_text("changed later")
    conf = await driver._conflist(network, Endpoint(id="e" * 64, container_id="c",
                                                    netns="/n", ifname="eth0"))
    assert conf.name == "web"
    broken = NetworkConfig(id="c" * 64, name="x", options={"conflist": str(source)})
    with pytest.raises(InvalidNetworkOption, match="not JSON"):
        await driver.create_network(broken)
    await driver.delete_network(network)
    assert not list((tmp_path / "state" / "networks").iterdir())
