"""Netlink work for the drivers, done the one way that is safe under trio.

The recipe (measured in the runtime spike, §5): every job is one synchronous function
that opens its own `pyroute2.IPRoute`, does its work and closes it, run on a worker
thread with `await netlink(fn, *args)`:

- the sync `IPRoute` is used, not `AsyncIPRoute` (asyncio futures can't be awaited
  under trio), and never on the trio thread (a dump can take 0.5 s under load);
- one IPRoute per call: pyroute2 binds its socket and event loop to the thread that
  opened it, and an object reused from another thread silently talks to the wrong
  namespace or leaks its loop;
- work inside a container's namespace happens under `netns.in_netns(path)` on the same
  worker thread, with the IPRoute opened *after* switching (the socket is bound to
  the namespace it was created in);
- nothing forks (pyroute2's `netns=` helpers do);
- a small `CapacityLimiter`: the kernel serialises these under rtnl_lock anyway, and
  every concurrent job costs a socket and an event loop.

pyroute2 is imported inside the jobs, on the worker thread: it costs about 270 ms and a
daemon that never makes a bridge network need not pay it.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from engine.kernel.netns import in_netns

T = TypeVar("T")

netlink_limiter = trio.CapacityLimiter(2)


async def netlink(fn: Callable[..., T], *args: Any) -> T:
    """Run one netlink job on a worker thread behind the shared limiter."""
    return await trio.to_thread.run_sync(fn, *args, limiter=netlink_limiter)


def _iproute() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def _is_errno(exc: BaseException, *codes: int) -> bool:
    return getattr(exc, "code", None) in codes


# --- host side ------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    with _iproute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def link_kind(name: str) -> str | None:
    """The link's kind (`bridge`, `veth`, …), "" when it has none, None when absent."""
    with _iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        link = ipr.get_links(found[0])[0]
        info = link.get("IFLA_LINKINFO")
        return (info.get("IFLA_INFO_KIND") if info is not None else None) or ""


def ensure_bridge(name: str, address: ipaddress.IPv4Interface | None, mtu: int, mac: str) -> bool:
    """A bridge `name`, up, with `address` (if any) and `mtu`; True if it had to be made.

    The bridge gets a fixed MAC at creation; otherwise Linux gives it the lowest MAC of
    its ports, which changes as containers come and go and upsets neighbours' caches.
    """
    with _iproute() as ipr:
        created = False
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=mac)
                created = True
            except Exception as exc:
                if not _is_errno(exc, errno.EEXIST):
                    raise
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        if address is not None:
            wanted = (str(address.ip), address.network.prefixlen)
            have = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)]
            for other in have:
                if other != wanted:  # the network's subnet changed (a new default-bridge-subnet)
                    ipr.addr("del", index=index, address=other[0], prefixlen=other[1])
            if wanted not in have:
                try:
                    ipr.addr("add", index=index, address=wanted[0], prefixlen=wanted[1])
                except Exception as exc:
                    if not _is_errno(exc, errno.EEXIST):
                        raise
        ipr.link("set", index=index, state="up")
        return created


def delete_link(name: str) -> None:
    """Delete a link by name; quiet when it is already gone."""
    with _iproute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except Exception as exc:
            if not _is_errno(exc, errno.ENODEV, errno.ENOENT):
                raise


def links_with_prefix(prefix: str) -> list[str]:
    with _iproute() as ipr:
        names = [link.get("IFLA_IFNAME") for link in ipr.get_links()]
    return [n for n in names if n and n.startswith(prefix)]


def write_sysctl(path: str, value: str) -> None:
    """`path` relative to /proc/sys (dots or slashes); skipped if already `value`."""
    full = Path("/proc/sys") / path.replace(".", "/")
    try:
        if full.read_text().strip() == value:
            return
    except OSError:
        pass
    full.write_text(value + "\n")


@attrs.frozen
class HostNetworks:
    """What the host already routes to or owns; a new network's subnet must avoid it."""

    routes: tuple[ipaddress.IPv4Network, ...]
    addresses: tuple[ipaddress.IPv4Interface, ...]
    route_devices: tuple[str, ...]  # the device of each route, in the same order


def host_networks() -> HostNetworks:
    """Every IPv4 route of the main table (but the default route) and every address."""
    routes: list[ipaddress.IPv4Network] = []
    devices: list[str] = []
    addresses: list[ipaddress.IPv4Interface] = []
    with _iproute() as ipr:
        names = {link["index"]: link.get("IFLA_IFNAME") or "" for link in ipr.get_links()}
        for route in ipr.get_routes(family=2, table=254):
            if route["dst_len"] == 0:
                continue
            dst = route.get("RTA_DST")
            if not dst:
                continue
            routes.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
            devices.append(names.get(route.get("RTA_OIF") or 0, ""))
        for a in ipr.get_addr(family=2):
            addresses.append(ipaddress.IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"))
    return HostNetworks(tuple(routes), tuple(addresses), tuple(devices))


# --- endpoints ---------------------------------------------------------------------------


@attrs.frozen
class VethPlan:
    """One veth pair: `host_name` on the host (enslaved to `bridge`), the peer created
    directly in the namespace at `netns` as `peer_name`, then renamed to `ifname`."""

    host_name: str
    peer_name: str
    bridge: str
    netns: str
    ifname: str
    mac: str
    mtu: int
    address: ipaddress.IPv4Interface | None
    gateway: ipaddress.IPv4Address | None


def _peer_present(plan: VethPlan) -> bool:
    if not os.path.exists(plan.netns):
        return False
    with in_netns(plan.netns), _iproute() as ns:
        return bool(ns.link_lookup(ifname=plan.ifname))


def ensure_veth(plan: VethPlan) -> bool:
    """The whole join in one worker-thread job: nothing if the pair is already there (a
    moord restart), else a half-made pair removed and the pair made. True if made."""
    with _iproute() as ipr:
        if ipr.link_lookup(ifname=plan.host_name):
            if _peer_present(plan):
                return False
            ipr.link("del", ifname=plan.host_name)
        _add_host_side(ipr, plan)
    _configure_peer(plan)
    return True


def _add_host_side(ipr: Any, plan: VethPlan) -> None:
    bridge = ipr.link_lookup(ifname=plan.bridge)
    if not bridge:
        raise FileNotFoundError(errno.ENODEV, f"bridge {plan.bridge} does not exist")
    nsfd = os.open(plan.netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("add", ifname=plan.host_name, kind="veth", mtu=plan.mtu,
                 peer={"ifname": plan.peer_name, "net_ns_fd": nsfd, "mtu": plan.mtu})
    finally:
        os.close(nsfd)
    host = ipr.link_lookup(ifname=plan.host_name)[0]
    ipr.link("set", index=host, master=bridge[0], state="up")


def _configure_peer(plan: VethPlan) -> None:
    with in_netns(plan.netns), _iproute() as ns:
        peer = ns.link_lookup(ifname=plan.peer_name)[0]
        settings: dict[str, Any] = {"ifname": plan.ifname, "mtu": plan.mtu}
        if plan.mac:
            settings["address"] = plan.mac
        ns.link("set", index=peer, **settings)
        if plan.address is not None:
            ns.addr("add", index=peer, address=str(plan.address.ip),
                    prefixlen=plan.address.network.prefixlen)
        ns.link("set", index=peer, state="up")
        if plan.gateway is not None:
            ns.route("add", dst="0.0.0.0/0", gateway=str(plan.gateway))


def remove_veth(host_name: str, netns: str, ifname: str) -> None:
    """Delete the pair: by its host end (which takes the peer with it), or from inside
    the namespace if the host end is already gone."""
    with _iproute() as ipr:
        try:
            ipr.link("del", ifname=host_name)
            return
        except Exception as exc:
            if not _is_errno(exc, errno.ENODEV, errno.ENOENT):
                raise
    if netns and os.path.exists(netns):
        try:
            with in_netns(netns), _iproute() as ns:
                found = ns.link_lookup(ifname=ifname)
                if found:
                    ns.link("del", index=found[0])
        except OSError:
            pass


def namespace_links(netns: str) -> list[str]:
    """The interface names inside a namespace (for tests and diagnostics)."""
    with in_netns(netns), _iproute() as ns:
        return [link.get("IFLA_IFNAME") for link in ns.get_links()]
