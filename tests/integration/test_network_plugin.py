"""A Docker network plugin written here, used by a container.

The plugin (HTTP on a unix socket in a private plugin directory) does what a real one
does with the kernel: `CreateNetwork` makes a bridge holding the gateway address,
`Join` makes a veth pair whose host end is on that bridge and hands the other end to
moord (`InterfaceName`), with a static route; moord moves it into the container as
eth0 with the address its IPAM chose. The container reaches the gateway; `Leave` and
`DeleteEndpoint` give the interface back and remove it; `DeleteNetwork` the bridge.

An IPAM plugin written here gives a `bridge` network its subnet and gateway and each
container (at start, and at a live `network connect`) its address; every lease is
given back.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import Moord
from tests.support.fake_plugin import serve_plugin

pytestmark = [pytest.mark.integration, pytest.mark.needs_tools("ip")]

ROUTE = "198.51.100.0/24"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class BridgePlugin:
    """NetworkDriver: one bridge per network, one veth pair per endpoint."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.bridges: dict[str, str] = {}
        self.gateways: dict[str, str] = {}
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def links(self) -> list[str]:
        out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
        return [link["ifname"] for link in json.loads(out) if link["ifname"].startswith(self.prefix)]

    def __call__(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append(method)
            return self.answer(method, body)

    def answer(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        net = body.get("NetworkID", "")
        veth = f"{self.prefix}{body.get('EndpointID', '')[:8]}"
        if method == "Plugin.Activate":
            return 200, {"Implements": ["NetworkDriver"]}
        if method == "NetworkDriver.GetCapabilities":
            return 200, {"Scope": "local", "ConnectivityScope": "local"}
        if method == "NetworkDriver.CreateNetwork":
            bridge = f"{self.prefix}br{len(self.bridges)}"
            gateway = body["IPv4Data"][0]["Gateway"]
            _ip("link", "add", bridge, "type", "bridge")
            _ip("addr", "add", gateway, "dev", bridge)
            _ip("link", "set", bridge, "up")
            self.bridges[net], self.gateways[net] = bridge, gateway.split("/")[0]
            return 200, {}
        if method == "NetworkDriver.CreateEndpoint":
            assert body["Interface"]["Address"], body
            return 200, {"Interface": {}}
        if method == "NetworkDriver.Join":
            _ip("link", "add", veth + "h", "type", "veth", "peer", "name", veth + "c")
            _ip("link", "set", veth + "h", "master", self.bridges[net], "up")
            return 200, {"InterfaceName": {"SrcName": veth + "c", "DstPrefix": "eth"},
                         "Gateway": self.gateways[net],
                         "StaticRoutes": [{"Destination": ROUTE, "RouteType": 0,
                                           "NextHop": self.gateways[net]}]}
        if method == "NetworkDriver.DeleteEndpoint":
            subprocess.run(["ip", "link", "del", veth + "h"], capture_output=True, check=False)
            return 200, {}
        if method == "NetworkDriver.DeleteNetwork":
            _ip("link", "del", self.bridges.pop(net))
            return 200, {}
        return 200, {}


def test_a_container_uses_a_docker_network_plugin(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    plugin = BridgePlugin("dp" + secrets.token_hex(2))
    third = 100 + secrets.randbelow(100)
    subnet, gateway = f"10.213.{third}.0/24", f"10.213.{third}.1"
    try:
        with serve_plugin(d.root / "plugins" / "testnet.sock", plugin):
            d.start("--plugin-socket-dir", str(d.root / "plugins"),
                    "--plugin-spec-dir", str(d.root / "specs"))
            d.import_busybox()
            d.docker("network", "create", "-d", "testnet", "--subnet", subnet, "pnet")
            out = d.docker("run", "--rm", "--network", "pnet", "busybox", "sh", "-c",
                           "ip -4 addr show eth0; ip route; ping -c 1 -W 5 " + gateway,
                           timeout=120).stdout
            assert f"inet 10.213.{third}.2/24" in out, out
            assert f"default via {gateway} dev eth0" in out, out
            assert f"{ROUTE} via {gateway} dev eth0" in out, out
            assert "1 packets received" in out, out

            info = json.loads(d.docker("info", "--format", "{{json .Plugins}}").stdout)
            assert "testnet" in info["Network"]
            assert plugin.links() == [f"{plugin.prefix}br0"]  # the veth went with Leave
            d.docker("network", "rm", "pnet")
            assert plugin.links() == []
            d.stop()
        assert plugin.calls[:3] == ["Plugin.Activate", "NetworkDriver.GetCapabilities",
                                    "NetworkDriver.CreateNetwork"]
        for call in ("CreateEndpoint", "Join", "Leave", "DeleteEndpoint", "DeleteNetwork"):
            assert f"NetworkDriver.{call}" in plugin.calls
    finally:
        for link in plugin.links():
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


class PoolPlugin:
    """IpamDriver: one pool in a subnet of the test's, addresses from .77 up."""

    def __init__(self, subnet_prefix: str) -> None:
        self.prefix = subnet_prefix  # "10.216.N"
        self.next = 77
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append((method, body))
        if method == "Plugin.Activate":
            return 200, {"Implements": ["IpamDriver"]}
        if method == "IpamDriver.GetCapabilities":
            return 200, {"RequiresMACAddress": False}
        if method == "IpamDriver.GetDefaultAddressSpaces":
            return 200, {"LocalDefaultAddressSpace": "testlocal",
                         "GlobalDefaultAddressSpace": "testglobal"}
        if method == "IpamDriver.RequestPool":
            return 200, {"PoolID": "pool-1", "Pool": f"{self.prefix}.0/24", "Data": {}}
        if method == "IpamDriver.RequestAddress":
            if body["Options"].get("RequestAddressType") == "com.docker.network.gateway":
                return 200, {"Address": f"{self.prefix}.1/24"}
            address, self.next = f"{self.prefix}.{self.next}/24", self.next + 1
            return 200, {"Address": address}
        return 200, {}


def test_a_network_takes_its_addresses_from_an_ipam_plugin(
        fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    prefix = f"10.216.{100 + secrets.randbelow(100)}"
    plugin = PoolPlugin(prefix)
    with serve_plugin(d.root / "plugins" / "testipam.sock", plugin):
        d.start("--plugin-socket-dir", str(d.root / "plugins"),
                "--plugin-spec-dir", str(d.root / "specs"))
        d.import_busybox()
        d.docker("network", "create", "--ipam-driver", "testipam", "ipnet")
        ipam = json.loads(d.docker("network", "inspect", "ipnet").stdout)[0]["IPAM"]
        assert ipam["Driver"] == "testipam"
        assert ipam["Config"][0]["Subnet"] == f"{prefix}.0/24"
        assert ipam["Config"][0]["Gateway"] == f"{prefix}.1"
        out = d.docker("run", "--rm", "--network", "ipnet", "busybox", "sh", "-c",
                       f"ip -4 addr show eth0; ping -c 1 -W 5 {prefix}.1", timeout=120).stdout
        assert f"inet {prefix}.77/24" in out, out
        assert "1 packets received" in out, out
        # a live connect asks for an address too; the disconnect gives it back
        d.docker("run", "-d", "--name", "later", "busybox", "sleep", "600")
        d.docker("network", "connect", "ipnet", "later")
        shown = d.docker("inspect", "-f", "{{.NetworkSettings.Networks.ipnet.IPAddress}}",
                         "later").stdout.strip()
        assert shown == f"{prefix}.78"
        d.docker("network", "disconnect", "ipnet", "later")
        d.docker("rm", "-f", "later")
        d.docker("network", "rm", "ipnet")
        d.stop()
    calls = [(m.removeprefix("IpamDriver."), b) for m, b in plugin.calls]
    assert [m for m, _b in calls[:4]] == ["Plugin.Activate", "GetCapabilities",
                                          "GetDefaultAddressSpaces", "RequestPool"]
    assert calls[3][1] == {"AddressSpace": "testlocal", "Pool": "", "SubPool": "", "Options": {},
                           "V6": False}
    released = [b["Address"] for m, b in calls if m == "ReleaseAddress"]
    # the containers' addresses, then the gateway's
    assert released == [f"{prefix}.77", f"{prefix}.78", f"{prefix}.1"]
    assert calls[-1] == ("ReleasePool", {"PoolID": "pool-1"})
