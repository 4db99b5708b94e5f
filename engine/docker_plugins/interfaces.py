"""The sandbox side of a Docker network plugin's `Join`: the plugin made an interface on
the host (`InterfaceName.SrcName`); moord moves it into the container's namespace, names
it, gives it the endpoint's MAC and addresses, brings it up and adds the gateway and the
plugin's static routes — what dockerd's sandbox does. `Leave` gives it back to the host
under its first name, so the plugin can delete it. Worker-thread jobs, one IPRoute each
(the recipe of `engine.kernel.netlink`).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from typing import Any

import attrs

from engine.kernel.netns import in_netns

#: `StaticRoutes[].RouteType`: through `NextHop`, or directly on the interface.
NEXTHOP, CONNECTED = 0, 1


@attrs.frozen
class StaticRoute:
    destination: str
    route_type: int = NEXTHOP
    next_hop: str = ""


@attrs.frozen
class SandboxPlan:
    """One interface to move into `netns` as `ifname` and configure there."""

    src_name: str
    netns: str
    ifname: str
    mac: str = ""
    mtu: int = 0
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    gateway: str = ""
    gateway6: str = ""
    routes: Sequence[StaticRoute] = ()


def _iproute() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def present(netns: str, ifname: str) -> bool:
    """Whether the namespace already has the interface (a join repeated after a restart)."""
    if not os.path.exists(netns):
        return False
    with in_netns(netns), _iproute() as ns:
        return bool(ns.link_lookup(ifname=ifname))


def move_in(plan: SandboxPlan) -> None:
    """Move the plugin's interface into the namespace and configure it there."""
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=plan.src_name)
        if not found:
            raise LookupError(f"the plugin's interface {plan.src_name} does not exist on the host")
        nsfd = os.open(plan.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("set", index=found[0], state="down")
            ipr.link("set", index=found[0], net_ns_fd=nsfd)
        finally:
            os.close(nsfd)
    with in_netns(plan.netns), _iproute() as ns:
        index = ns.link_lookup(ifname=plan.src_name)[0]
        settings: dict[str, Any] = {"ifname": plan.ifname}
        if plan.mac:
            settings["address"] = plan.mac
        if plan.mtu:
            settings["mtu"] = plan.mtu
        ns.link("set", index=index, **settings)
        for address in plan.addresses:
            ns.addr("add", index=index, address=str(address.ip),
                    prefixlen=address.network.prefixlen)
        ns.link("set", index=index, state="up")
        if plan.gateway:
            ns.route("add", dst="0.0.0.0/0", gateway=plan.gateway)
        if plan.gateway6:
            ns.route("add", dst="::/0", gateway=plan.gateway6, family=socket.AF_INET6)
        for route in plan.routes:
            family = socket.AF_INET6 if ":" in route.destination else socket.AF_INET
            if route.route_type == CONNECTED:
                ns.route("add", dst=route.destination, oif=index, family=family)
            else:
                ns.route("add", dst=route.destination, gateway=route.next_hop, family=family)


def move_out(netns: str, ifname: str, src_name: str) -> None:
    """Give the interface back to the host as `src_name` (nothing if it is gone)."""
    if not netns or not os.path.exists(netns):
        return
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # moord's own
    try:
        with in_netns(netns), _iproute() as ns:
            found = ns.link_lookup(ifname=ifname)
            if not found:
                return
            ns.link("set", index=found[0], state="down")
            ns.link("set", index=found[0], ifname=src_name, net_ns_fd=host_fd)
    finally:
        os.close(host_fd)
