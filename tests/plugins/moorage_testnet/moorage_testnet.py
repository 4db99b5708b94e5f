"""`testnet`: a third-party moorage network driver (for the tests; see README.md)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from engine.kernel import netlink
from engine.kernel.netns import in_netns
from plugins import hookimpl
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriver,
    PublishedPort,
)


def _add_pair(host_name: str, netns: str, ifname: str, address: str, prefixlen: int,
              mac: str) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        if ipr.link_lookup(ifname=host_name):
            return
        fd = os.open(netns, os.O_RDONLY)
        try:
            ipr.link("add", ifname=host_name, kind="veth",
                     peer={"ifname": "tnpeer0", "net_ns_fd": fd})
        finally:
            os.close(fd)
        index = ipr.link_lookup(ifname=host_name)[0]
        ipr.link("set", index=index, state="up")
        if address:
            ipr.route("add", dst=f"{address}/32", oif=index)
    with in_netns(netns), IPRoute() as ns:
        peer = ns.link_lookup(ifname="tnpeer0")[0]
        settings: dict[str, Any] = {"ifname": ifname}
        if mac:
            settings["address"] = mac
        ns.link("set", index=peer, **settings)
        if address:
            ns.addr("add", index=peer, address=address, prefixlen=prefixlen)
        ns.link("set", index=peer, state="up")


@attrs.define(eq=False)
class TestNetDriver:
    name: str = "testnet"
    namespace: Literal["private"] = "private"
    uses_ipam: bool = True
    singleton: bool = False
    prefix: str = "tn"
    trace_file: Path | None = None

    def _trace(self, call: str, **details: Any) -> None:
        if self.trace_file is None:
            return
        self.trace_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.trace_file, "a") as f:
            f.write(json.dumps({"call": call, "time": time.time(), **details}) + "\n")

    async def setup(self, context: DriverContext) -> None:
        self.prefix = context.prefix
        self.trace_file = context.state_dir / "trace.jsonl"
        self._trace("setup", prefix=context.prefix)

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        for key in options:
            if key != "colour":
                raise InvalidNetworkOption(f"testnet: unknown option {key!r} (only 'colour')")
        return dict(options)

    async def create_network(self, network: NetworkConfig) -> None:
        self._trace("create_network", network=network.name, subnet=str(network.subnet))

    async def delete_network(self, network: NetworkConfig) -> None:
        self._trace("delete_network", network=network.name)

    def _host_name(self, endpoint: Endpoint) -> str:
        return f"{self.prefix}{endpoint.id[:15 - len(self.prefix)]}"

    async def join(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        address = str(endpoint.address.ip) if endpoint.address else ""
        prefixlen = endpoint.address.network.prefixlen if endpoint.address else 0
        await netlink.netlink(_add_pair, self._host_name(endpoint), endpoint.netns,
                              endpoint.ifname, address, prefixlen, endpoint.mac)
        self._trace("join", network=network.name, container=endpoint.container_id,
                    address=address, ifname=endpoint.ifname)

    async def leave(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        await netlink.netlink(netlink.delete_link, self._host_name(endpoint))
        self._trace("leave", network=network.name, container=endpoint.container_id)

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        self._trace("publish", network=network.name, ports=[p.host_port for p in ports])

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        self._trace("unpublish", network=network.name)

    async def ready(self) -> None:
        self._trace("ready")

    def network_options(self, network: NetworkConfig) -> dict[str, str]:
        return {"colour": "blue", **network.options}

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {"testnet.peer": self._host_name(endpoint)}


@hookimpl
def moorage_network_drivers() -> Sequence[NetworkDriver]:
    return [TestNetDriver()]
