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
- a small `CapacityLimiter` per trio loop (moord's, and each driver's own): the kernel
  serialises these under rtnl_lock anyway, and every concurrent job costs a socket and
  an event loop.

pyroute2 is imported inside the jobs, on the worker thread: it costs about 270 ms and a
daemon that never makes a bridge network need not pay it.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from engine.kernel.netns import in_netns

T = TypeVar("T")

#: one limiter per trio loop: each driver runs on a loop of its own (plugins/deadlines.py)
#: and a trio object must never be shared between loops
_limiters: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("netlink_limiter")


def netlink_limiter() -> trio.CapacityLimiter:
    """This trio loop's netlink limiter (made at its first use)."""
    try:
        return _limiters.get()
    except LookupError:
        limiter = trio.CapacityLimiter(2)
        _limiters.set(limiter)
        return limiter


async def netlink(fn: Callable[..., T], *args: Any) -> T:
    """Run one netlink job on a worker thread behind this loop's limiter."""
    return await trio.to_thread.run_sync(fn, *args, limiter=netlink_limiter())


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


IFA_F_NODAD = 0x02  # no duplicate address detection: the address is usable at once
_SCOPE_LINK = 253


def _sync_addresses(ipr: Any, index: int, family: int,
                    wanted: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None) -> None:
    """Make `wanted` the link's only address of `family` (IPv6 link-local ones stay)."""
    target = (str(wanted.ip), wanted.network.prefixlen) if wanted is not None else None
    have = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=family)
            if a["scope"] != _SCOPE_LINK]
    for other in have:
        if other != target:  # the network's subnet changed (a new default-bridge-subnet)
            ipr.addr("del", index=index, address=other[0], prefixlen=other[1])
    if target is not None and target not in have:
        extra = {"flags": IFA_F_NODAD} if family == socket.AF_INET6 else {}
        try:
            ipr.addr("add", index=index, address=target[0], prefixlen=target[1], **extra)
        except Exception as exc:
            if not _is_errno(exc, errno.EEXIST):
                raise


def ensure_bridge(name: str, address: ipaddress.IPv4Interface | None, mtu: int, mac: str,
                  address6: ipaddress.IPv6Interface | None = None, *,
                  clear_ipv6: bool = False) -> bool:
    """A bridge `name`, up, with `address` (if any), `address6` (if any) and `mtu`;
    True if it had to be made.

    The bridge gets a fixed MAC at creation; otherwise Linux gives it the lowest MAC of
    its ports, which changes as containers come and go and upsets neighbours' caches.
    IPv6 is switched on for the bridge when it gets an IPv6 address (a host may have
    `disable_ipv6` on by default); without one, its global IPv6 addresses are removed
    only if `clear_ipv6` (a bridge of the daemon's own whose network lost IPv6, never a
    host bridge adopted by name).
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
            _sync_addresses(ipr, index, socket.AF_INET, address)
        if address6 is not None:
            write_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
        if address6 is not None or (clear_ipv6 and os.path.exists(f"/proc/sys/net/ipv6/conf/{name}")):
            _sync_addresses(ipr, index, socket.AF_INET6, address6)
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
    """`path` relative to /proc/sys, with slashes (or dots when no part has one: an
    interface name may); skipped if already `value`. Under `in_netns` it is the
    namespace's setting (/proc/sys/net follows the calling thread's namespace)."""
    full = Path("/proc/sys") / (path if "/" in path else path.replace(".", "/"))
    try:
        if full.read_text().strip() == value:
            return
    except OSError:
        pass
    full.write_text(value + "\n")


@attrs.frozen
class HostNetworks:
    """What the host already routes to or owns; a new network's subnet must avoid it."""

    routes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]
    route_devices: tuple[str, ...]  # the device of each route, in the same order


def host_networks() -> HostNetworks:
    """Every IPv4 and IPv6 route of the main table (but default routes and IPv6's
    link-local and multicast ones) and every address."""
    routes: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    devices: list[str] = []
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
    with _iproute() as ipr:
        names = {link["index"]: link.get("IFLA_IFNAME") or "" for link in ipr.get_links()}
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in ipr.get_routes(family=family, table=254):
                if route["dst_len"] == 0:
                    continue
                dst = route.get("RTA_DST")
                if not dst:
                    continue
                network = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
                if network.is_link_local or network.is_multicast:
                    continue
                routes.append(network)
                devices.append(names.get(route.get("RTA_OIF") or 0, ""))
            for a in ipr.get_addr(family=family):
                address = ipaddress.ip_interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
                if not address.ip.is_link_local:
                    addresses.append(address)
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
    address6: ipaddress.IPv6Interface | None = None
    gateway6: ipaddress.IPv6Address | None = None
    link_local: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()

    @property
    def ipv6(self) -> bool:
        """Whether the interface needs IPv6 (an address of its own or a link-local one)."""
        return self.address6 is not None or any(a.version == 6 for a in self.link_local)


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
        # IPv6 on the interface only if it has IPv6 addresses (as Docker): otherwise the
        # kernel would give it a link-local address and listen to router advertisements
        switch = f"net/ipv6/conf/{plan.ifname}/disable_ipv6"
        if plan.ipv6 or os.path.exists(f"/proc/sys/{switch}"):  # a host without IPv6 at all
            write_sysctl(switch, "0" if plan.ipv6 else "1")
        if plan.address is not None:
            ns.addr("add", index=peer, address=str(plan.address.ip),
                    prefixlen=plan.address.network.prefixlen)
        if plan.address6 is not None:
            ns.addr("add", index=peer, address=str(plan.address6.ip),
                    prefixlen=plan.address6.network.prefixlen, flags=IFA_F_NODAD)
        for extra in plan.link_local:
            flags = {"flags": IFA_F_NODAD} if extra.version == 6 else {}
            ns.addr("add", index=peer, address=str(extra.ip), prefixlen=extra.network.prefixlen,
                    **flags)
        ns.link("set", index=peer, state="up")
        if plan.gateway is not None:
            ns.route("add", dst="0.0.0.0/0", gateway=str(plan.gateway))
        if plan.gateway6 is not None:
            ns.route("add", dst="::/0", gateway=str(plan.gateway6), family=socket.AF_INET6)


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
