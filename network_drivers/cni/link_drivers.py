"""Docker's `macvlan` and `ipvlan` drivers, made with the CNI plugins of those names.

`docker network create -d macvlan -o parent=eth0 --subnet 192.168.1.0/24 lan`: moord's
IPAM gives the addresses (so `--ip`, `--subnet`, `--gateway`, inspect and names work as
on every moord network) and each container's interface is a macvlan (or ipvlan) child
of `parent`, made by the CNI plugin with the `static` IPAM plugin handing it the address
moord chose. The plugin's conflist is generated per container and cached with the
result like any CNI attachment, so a restarted moord deletes exactly what it added.

Options, as Docker's: `parent` (required: moorage does not make Docker's dummy parent,
nor a VLAN sub-interface for `eth0.10`), `macvlan_mode` (bridge, private, vepa,
passthru; default bridge), `ipvlan_mode` (l2, l3, l3s; default l2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from network_drivers.cni.attach import CNIAttachments, CNIBackedDriver
from network_drivers.cni.conflist import ConfList
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    PublishedPort,
)


@attrs.frozen
class LinkKind:
    """What differs between macvlan and ipvlan: the mode option and its values."""

    name: str
    mode_option: str
    modes: tuple[str, ...]

    @property
    def options(self) -> frozenset[str]:
        return frozenset({"parent", self.mode_option})


MACVLAN = LinkKind("macvlan", "macvlan_mode", ("bridge", "private", "vepa", "passthru"))
IPVLAN = LinkKind("ipvlan", "ipvlan_mode", ("l2", "l3", "l3s"))


def _ipam(endpoint: Endpoint) -> dict[str, Any]:
    """The `static` IPAM plugin's configuration for the addresses moord allocated."""
    addresses: list[dict[str, str]] = []
    routes: list[dict[str, str]] = []
    for address, gateway, default in ((endpoint.address, endpoint.gateway, "0.0.0.0/0"),
                                      (endpoint.address6, endpoint.gateway6, "::/0")):
        if address is None:
            continue
        entry = {"address": str(address)}
        if gateway is not None:
            entry["gateway"] = str(gateway)
            routes.append({"dst": default, "gw": str(gateway)})
        addresses.append(entry)
    return {"type": "static", "addresses": addresses, "routes": routes}


@attrs.define(eq=False)
class LinkDriver(CNIBackedDriver):
    """A driver whose containers get a child link of a host interface (`parent`)."""

    kind: LinkKind
    namespace: Literal["private"] = "private"
    uses_ipam: bool = True
    singleton: bool = False

    @property
    def name(self) -> str:
        return self.kind.name

    async def setup(self, context: DriverContext) -> None:
        self.attachments = CNIAttachments(context.state_dir, self._conflist)

    def validate_options(self, options: Mapping[str, str]) -> dict[str, str]:
        kind = self.kind
        unknown = sorted(set(options) - kind.options)
        if unknown:
            raise InvalidNetworkOption(f"{kind.name}: unknown option {unknown[0]!r} "
                                       f"(parent, {kind.mode_option})")
        parent = options.get("parent", "")
        if not parent:
            raise InvalidNetworkOption(f"{kind.name}: -o parent=IFACE is required (moorage does "
                                       "not make a dummy parent)")
        mode = options.get(kind.mode_option, kind.modes[0])
        if mode not in kind.modes:
            raise InvalidNetworkOption(f"{kind.name}: {kind.mode_option} {mode!r} is not one of "
                                       f"{', '.join(kind.modes)}")
        return dict(options)  # as Docker, inspect shows the options given, not the defaults

    async def create_network(self, network: NetworkConfig) -> None:
        parent = network.options["parent"]
        if not await trio.to_thread.run_sync(os.path.exists, f"/sys/class/net/{parent}"):
            raise InvalidNetworkOption(f"-o parent interface was not found on the host: {parent}")

    async def delete_network(self, network: NetworkConfig) -> None:
        return None

    async def _conflist(self, network: NetworkConfig, endpoint: Endpoint) -> ConfList:
        plugin: dict[str, Any] = {
            "type": self.kind.name, "master": network.options["parent"],
            "mode": network.options.get(self.kind.mode_option, self.kind.modes[0]),
            "ipam": _ipam(endpoint),
        }
        if endpoint.mtu:
            plugin["mtu"] = endpoint.mtu
        if endpoint.mac and self.kind is MACVLAN:  # ipvlan children share the parent's
            plugin["mac"] = endpoint.mac
        return ConfList(name=f"moorage-{network.short_id}", cni_version="1.0.0",
                        plugins=(plugin,))

    async def publish(self, network: NetworkConfig, endpoint: Endpoint,
                      ports: Sequence[PublishedPort]) -> None:
        return None  # as Docker: ports are not published on macvlan and ipvlan networks

    async def unpublish(self, network: NetworkConfig, endpoint: Endpoint) -> None:
        return None

    def endpoint_options(self, network: NetworkConfig, endpoint: Endpoint) -> dict[str, str]:
        return {}  # the address is moord's, shown as on any network


def macvlan_driver() -> LinkDriver:
    return LinkDriver(MACVLAN)


def ipvlan_driver() -> LinkDriver:
    return LinkDriver(IPVLAN)


__all__ = ["IPVLAN", "MACVLAN", "LinkDriver", "ipvlan_driver", "macvlan_driver"]
