"""`Attachments`: what each running container holds on its networks, made and undone.

`attach` networks a container about to start: a namespace of its own joined to each of
its networks (or the host's namespace, or one with only `lo`), addresses from the
networks' pools, host ports, DNS names, and the /etc files that go with them. `teardown`
undoes all of it. Everything the kernel holds for a container is described by its
`AttachmentRecord`, saved before the kernel objects are made and deleted after they are
gone, so after any crash the start-up restore (engine.networks.restore) can re-adopt
what still runs and tear down what doesn't.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import attrs
import trio

from engine import ids
from engine.errors import NotFound, SystemFailure
from engine.kernel import netlink, netns
from engine.networks import etcfiles, ipam, linkspec, remote_ipam
from engine.networks.catalog import NetworkCatalog, driver_error, now
from engine.networks.dns_servers import NetworkDNS
from engine.networks.loopback6 import LoopbackForwarders
from engine.networks.model import (
    Attachment,
    AttachmentRecord,
    ContainerInfo,
    EndpointRequest,
    EndpointState,
    NetworkRecord,
    PortRequest,
    PortState,
)
from engine.networks.ports import PortAllocationError, PortAllocator, is_ipv6
from engine.store import RecordStore
from plugins.network_contract import Endpoint, NetworkConfig, NetworkDriver, PublishedPort

log = logging.getLogger(__name__)

RESTORE_WAIT = 120.0  # how long a start waits for the start-up restore to finish
LAST_ADDRESSES = 4096  # containers whose previous address is offered to them again


def driver_endpoint(record: AttachmentRecord, ep: EndpointState) -> Endpoint:
    """One endpoint of an attachment as a driver sees it."""
    return Endpoint(
        id=ep.endpoint_id,
        container_id=record.container_id,
        netns=record.netns,
        ifname=ep.ifname,
        address=ipaddress.IPv4Interface(ep.address) if ep.address else None,
        gateway=ipaddress.IPv4Address(ep.gateway) if ep.default_route and ep.gateway else None,
        mac=ep.mac,
        address6=ipaddress.IPv6Interface(ep.address6) if ep.address6 else None,
        gateway6=ipaddress.IPv6Address(ep.gateway6) if ep.default_route and ep.gateway6 else None,
        link_local=tuple(ipaddress.ip_interface(a) for a in ep.link_local),
    )


def published(p: PortState) -> PublishedPort:
    """A bound host port as a driver publishes it."""
    proto: Literal["tcp", "udp"] = "udp" if p.protocol == "udp" else "tcp"
    return PublishedPort(proto, p.host_ip or "0.0.0.0", p.host_port, p.container_ip,
                         p.container_port)


async def join_endpoint(driver: NetworkDriver, config: NetworkConfig, endpoint: Endpoint,
                        ports: Iterable[PortState]) -> None:
    """Join an endpoint to its network, then publish the host ports bound on that network."""
    await driver.join(config, endpoint)
    wanted = [published(p) for p in ports]
    if wanted:
        await driver.publish(config, endpoint, wanted)


def _link_local(text: str) -> str:
    """A `LinkLocalIPs` entry with the prefix Docker gives it: /16 (IPv4) or /64 (IPv6)."""
    address = ipaddress.ip_address(text)
    return f"{address}/{16 if address.version == 4 else 64}"


def _host_addresses(asked: str, default_ip: str, ep: EndpointState) -> list[str]:
    """The host addresses one `-p` binds: `asked` ("" for every address) or the network's
    default (`host_binding_ipv4`); every address is 0.0.0.0 and, if the container has an
    IPv6 address on the network, :: too (as Docker). `::` without one means every IPv4
    address (there is no proxy to carry IPv6 to an IPv4-only container)."""
    if not asked:
        base = default_ip or "0.0.0.0"
        return ["0.0.0.0", "::"] if base == "0.0.0.0" and ep.ip6 else [base]
    if is_ipv6(asked) and not ep.ip6:
        if asked == "::":
            return ["0.0.0.0"]
        raise PortAllocationError(f"publishing on {asked} needs the container to have an IPv6 "
                                  "address on the network it publishes through (an --ipv6 network)")
    return [asked]
def _endpoint_links(request: EndpointRequest) -> dict[str, str]:
    """An endpoint's `Links` (`name:alias`) as {alias: name} for its container's DNS."""
    links = {}
    for value in request.links:
        try:
            name, alias = linkspec.parse_link(value)
        except linkspec.LinkFormatError:
            continue  # refused at create and connect; an old record's stays inert
        links[alias] = name
    return links


def _dns_names(info: ContainerInfo, aliases: Iterable[str]) -> list[str]:
    """Docker's DNSNames: the name, the aliases, the short ID, the hostname (deduplicated)."""
    names: list[str] = []
    for name in (info.name, *aliases, info.id[:12], info.hostname):
        if name and name not in names:
            names.append(name)
    return names


@attrs.define(eq=False)
class Attachments:
    catalog: NetworkCatalog
    dns: NetworkDNS
    exec_root: Path
    store: RecordStore[AttachmentRecord]
    records: dict[str, AttachmentRecord] = attrs.field(factory=dict)
    ports: PortAllocator = attrs.field(factory=PortAllocator)
    forwarders: LoopbackForwarders = attrs.field(factory=LoopbackForwarders)
    #: set once the start-up restore has run; `attach` waits for it
    restored: trio.Event = attrs.field(factory=trio.Event)
    _locks: defaultdict[str, trio.Lock] = attrs.field(factory=lambda: defaultdict(trio.Lock))
    _last_address: dict[tuple[str, str], ipam.IPAddress] = attrs.field(factory=dict)

    @classmethod
    async def open(cls, *, exec_root: Path, catalog: NetworkCatalog, dns: NetworkDNS,
                   ports: PortAllocator) -> Attachments:
        # what the kernel holds for this boot is kept where the kernel state is: under the
        # exec root (a tmpfs). It must survive moord dying (the page cache does), not the
        # host (a reboot takes the namespaces and links with it), so no fsync is needed.
        store: RecordStore[AttachmentRecord] = RecordStore(
            exec_root / "endpoints", AttachmentRecord, durable=False)
        loaded = await trio.to_thread.run_sync(store.load_all)
        return cls(catalog, dns, exec_root, store, dict(loaded), ports)

    # lookups -------------------------------------------------------------------------------
    def lock(self, container_id: str) -> trio.Lock:
        """Held while a container's attachment changes (attach, detach, connect, …)."""
        return self._locks[container_id]

    def get(self, container_id: str) -> AttachmentRecord | None:
        return self.records.get(container_id)

    def endpoints_on(self, network_id: str) -> list[tuple[AttachmentRecord, EndpointState]]:
        """The live endpoints of a network (running containers)."""
        return [(r, ep) for r in self.records.values() for ep in r.endpoints
                if ep.network_id == network_id]

    def netns_path(self, container_id: str) -> Path:
        return self.exec_root / "netns" / container_id

    # attaching -----------------------------------------------------------------------------
    async def attach(self, info: ContainerInfo) -> Attachment:
        """Network a container that is about to start; see `Attachment` for what to do
        with the result. On failure nothing is left behind (a port conflict is Docker's
        "Bind for 0.0.0.0:8080 failed: port is already allocated")."""
        with trio.move_on_after(RESTORE_WAIT):
            await self.restored.wait()
        if not self.restored.is_set():
            raise SystemFailure("networking is not ready: NetworkService.restore was not called")
        cid = info.id
        async with self._locks[cid]:
            stale = self.records.get(cid)
            if stale is not None:
                await self.teardown(stale)
            if info.joins:
                return self._joined_attachment(info)
            records = []
            for nid in info.networking.networks:
                record = self.catalog.records.get(nid)
                if record is None:
                    raise NotFound(f"network {nid} not found")
                records.append(record)
            # no network at all (disconnected from every one): a namespace of its own with
            # only `lo`, which `network connect` can still join live
            namespace = self.catalog.driver(records[0]).namespace if records else "private"
            if namespace == "host":
                return self._host_attachment(info)
            if namespace == "isolated":
                return self._isolated_attachment(info)
            return await self._attach_private(info, records)

    def _host_attachment(self, info: ContainerInfo) -> Attachment:
        net = info.networking
        record = AttachmentRecord(info.id, info.name, info.hostname, "host", now())
        gateway = self._host_gateway(None)
        hosts = etcfiles.hosts_file(mode="host", hostname=info.hostname,
                                    extra_hosts=net.extra_hosts, host_gateway=gateway)
        resolv = etcfiles.resolv_conf(
            mode="host", host=etcfiles.ResolvConf.parse(etcfiles.read_text("/etc/resolv.conf")),
            dns=net.dns, dns_search=net.dns_search, dns_options=net.dns_options)
        return Attachment("host", False, hosts, resolv, record)

    def _isolated_attachment(self, info: ContainerInfo) -> Attachment:
        net = info.networking
        record = AttachmentRecord(info.id, info.name, info.hostname, "", now())
        hosts = etcfiles.hosts_file(mode="none", hostname=info.hostname,
                                    domainname=info.domainname, extra_hosts=net.extra_hosts,
                                    host_gateway=self._host_gateway(None))
        resolv = etcfiles.resolv_conf(
            mode="none", host=etcfiles.ResolvConf.parse(etcfiles.read_text("/etc/resolv.conf")),
            dns=net.dns, dns_search=net.dns_search, dns_options=net.dns_options)
        return Attachment("", True, hosts, resolv, record)

    def _joined_attachment(self, info: ContainerInfo) -> Attachment:
        """`container:` mode: the namespace of the running container `info.joins` — its
        file when it has one, else its process's (`host` or `none` mode, or itself in
        `container:` mode) — and nothing of its own (no endpoint, address, name or /etc
        file: the caller mounts the other's files). Nothing is saved: nothing to undo."""
        owner = self.records.get(info.joins)
        netns = owner.netns if owner is not None and owner.netns else \
            f"/proc/{info.joins_pid}/ns/net"
        record = AttachmentRecord(info.id, info.name, info.hostname, netns, now())
        return Attachment(netns, False, "", "", record)

    def _host_gateway(self, record: AttachmentRecord | None) -> str:
        if record is not None:
            for ep in record.endpoints:
                if ep.default_route and ep.gateway:
                    return ep.gateway
        pool = self.catalog.pools.get(self.catalog.default_bridge.id)
        return str(pool.gateway) if pool else ""

    def _primary(self, records: Sequence[NetworkRecord]) -> NetworkRecord | None:
        """The network that carries the default route and the published ports (a
        network whose driver brings its own IPAM, such as `cni`, can be it too)."""
        for record in records:
            if record.internal:
                continue
            if record.id in self.catalog.pools or not self.catalog.driver(record).uses_ipam:
                return record
        return None

    async def _attach_private(self, info: ContainerInfo, records: list[NetworkRecord]) -> Attachment:
        cid = info.id
        net = info.networking
        path = str(self.netns_path(cid))
        record = AttachmentRecord(cid, info.name, info.hostname, path, now(),
                                  dns=list(net.dns), owned_netns=True)
        primary = self._primary(records)
        try:
            for index, network in enumerate(records):
                request = await remote_ipam.lease_address(
                    self.catalog.ipam_drivers, network, net.networks.get(network.id, EndpointRequest()))
                ep = self.allocate_endpoint(info, network, request, f"eth{index}",
                                            default_route=network is primary)
                record.endpoints.append(ep)
            self._link_aliases(info, record)
            if primary is not None and net.ports:
                record.ports = self._allocate_ports(info, record, primary, net.ports)
        except BaseException:
            with trio.CancelScope(shield=True):
                await remote_ipam.release_addresses(self.catalog.ipam_drivers, self.catalog.records,
                                                    record.endpoints)
            self._release(record)
            raise
        try:
            await self.store.save(cid, record)
            self.records[cid] = record
            await netlink.netlink(netns.create_netns, path)
            for ep in record.endpoints:
                network = self.catalog.records[ep.network_id]
                config = self.catalog.network_config(network)
                endpoint = driver_endpoint(record, ep)
                driver = self.catalog.driver(network)
                try:
                    await join_endpoint(driver, config, endpoint,
                                        (p for p in record.ports if p.network_id == network.id))
                except Exception as exc:
                    raise driver_error(
                        exc, f"failed to set up container networking on {network.name}") from None
            self.forwarders.start(cid, record.ports, self.ports)
            self.dns.register(record)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self.teardown(record)
            if isinstance(exc, OSError):
                raise SystemFailure(f"failed to set up container networking: {exc}") from None
            raise
        return Attachment(path, True, self._hosts_for(info, record), self._resolv_for(info, record),
                          record)

    def allocate_endpoint(self, info: ContainerInfo, network: NetworkRecord, request: EndpointRequest,
                          ifname: str, *, default_route: bool) -> EndpointState:
        """An endpoint on `network`: an address from its pool (the one asked for, or the
        container's previous one if free) and one from its IPv6 pool if it has one, the
        gateways and MAC, the link-local addresses asked for, the container's DNS names."""
        endpoint_id = ids.new_id()
        pool = self.catalog.pools.get(network.id)
        pool6 = self.catalog.pools6.get(network.id)
        address = gateway = mac = address6 = gateway6 = ""
        static = False
        try:
            if pool is not None:
                if request.ipv4_address:
                    chosen = ipaddress.ip_address(request.ipv4_address)
                    pool.take(chosen, endpoint_id)
                    static = True
                else:
                    chosen = pool.allocate(endpoint_id, self._last_address.get((network.id, info.id)))
                address = str(pool.interface(chosen))
                gateway = str(pool.gateway)
                mac = request.mac_address or ipam.mac_for(chosen)
            else:
                mac = request.mac_address
            if pool6 is not None:
                if request.ipv6_address:
                    chosen6 = ipaddress.ip_address(request.ipv6_address)
                    pool6.take(chosen6, endpoint_id)
                else:
                    chosen6 = pool6.allocate(endpoint_id)
                address6 = str(pool6.interface(chosen6))
                gateway6 = str(pool6.gateway)
        except BaseException:
            self.catalog.release_addresses(network.id, endpoint_id)
            raise
        return EndpointState(
            network_id=network.id, endpoint_id=endpoint_id, ifname=ifname, address=address,
            gateway=gateway, default_route=default_route, mac=mac.lower(),
            aliases=list(request.aliases), dns_names=_dns_names(info, request.aliases),
            static=static, address6=address6, gateway6=gateway6,
            link_local=[_link_local(a) for a in request.link_local_ips],
            links=_endpoint_links(request),
        )

    def _link_aliases(self, info: ContainerInfo, record: AttachmentRecord) -> None:
        """Legacy links answer in DNS on the default bridge as the linked container's
        short ID (a name it has there), beside the endpoint's own `Links`."""
        bridge = self.catalog.default_bridge.id
        for ep in record.endpoints:
            if ep.network_id == bridge:
                request = info.networking.networks.get(bridge, EndpointRequest())
                ep.links = {**_endpoint_links(request),
                            **{link.alias: link.container_id[:12] for link in info.links}}

    def _link_lines(self, info: ContainerInfo) -> list[str]:
        """/etc/hosts lines for the containers `info` links to, at their bridge address."""
        bridge = self.catalog.default_bridge.id
        lines = []
        for link in info.links:
            linked = self.records.get(link.container_id)
            for ep in linked.endpoints if linked is not None else ():
                if ep.network_id == bridge and ep.ip:
                    lines.append(linkspec.hosts_line(ep.ip, link.alias, link.name, link.hostname))
        return lines

    async def refresh_links(self, info: ContainerInfo) -> str | None:
        """A running container's legacy links changed (`info.links`: the running ones):
        its DNS aliases follow, and the new text of its /etc/hosts is returned (None when
        it has no attachment of its own)."""
        async with self._locks[info.id]:
            record = self.records.get(info.id)
            if record is None or not record.owned_netns:
                return None
            self._link_aliases(info, record)
            await self.store.save(info.id, record)
            self.dns.register(record)
            return self._hosts_for(info, record)

    def _allocate_ports(self, info: ContainerInfo, record: AttachmentRecord, primary: NetworkRecord,
                        requests: Sequence[PortRequest]) -> list[PortState]:
        ep = next(e for e in record.endpoints if e.network_id == primary.id)
        default_ip = primary.options.get("com.docker.network.bridge.host_binding_ipv4", "")
        bound: list[PortState] = []
        for request in requests:
            try:
                host_ips = _host_addresses(request.host_ip, default_ip, ep)
                port = self.ports.allocate(info.id, request.protocol, host_ips, request.host_port,
                                           request.host_port_end)
            except PortAllocationError as exc:
                raise SystemFailure(
                    f"failed to set up container networking: driver failed programming external "
                    f"connectivity on endpoint {info.name} ({ep.endpoint_id}): {exc}") from None
            for host_ip in host_ips:
                bound.append(PortState(request.protocol, host_ip, port, request.container_port,
                                       primary.id, ep.ip6 if is_ipv6(host_ip) else ep.ip))
        return bound

    def _hosts_for(self, info: ContainerInfo, record: AttachmentRecord) -> str:
        return etcfiles.hosts_file(
            mode="network", hostname=info.hostname, domainname=info.domainname,
            addresses=[ip for ep in record.endpoints for ip in (ep.ip, ep.ip6) if ip],
            extra_hosts=info.networking.extra_hosts, host_gateway=self._host_gateway(record),
            link_lines=self._link_lines(info))

    def _resolv_for(self, info: ContainerInfo, record: AttachmentRecord) -> str:
        net = info.networking
        servers = []
        for ep in sorted(record.endpoints, key=lambda e: not e.default_route):
            if ep.gateway and self.dns.serves(ep.network_id) and ep.gateway not in servers:
                servers.append(ep.gateway)
        host = etcfiles.ResolvConf.parse(etcfiles.read_text("/etc/resolv.conf"))
        return etcfiles.resolv_conf(mode="network", host=host, nameservers=servers, dns=net.dns,
                                    dns_search=net.dns_search, dns_options=net.dns_options)

    # undoing -------------------------------------------------------------------------------
    def _release(self, record: AttachmentRecord) -> None:
        for ep in record.endpoints:
            if ep.ip and ep.network_id in self.catalog.pools:
                key = (ep.network_id, record.container_id)
                self._last_address.pop(key, None)
                self._last_address[key] = ipaddress.ip_address(ep.ip)
                if len(self._last_address) > LAST_ADDRESSES:  # the oldest go first
                    del self._last_address[next(iter(self._last_address))]
            self.catalog.release_addresses(ep.network_id, ep.endpoint_id)
        self.forwarders.stop(record.container_id)
        self.ports.release(record.container_id)

    async def teardown(self, record: AttachmentRecord) -> None:
        """Undo an attachment as far as it got; never raises (failures are logged)."""
        cid = record.container_id
        self.dns.forget(cid)
        for ep in reversed(record.endpoints):
            network = self.catalog.records.get(ep.network_id)
            if network is None:
                continue
            try:
                driver = self.catalog.driver(network)
                config = self.catalog.network_config(network)
                endpoint = driver_endpoint(record, ep)
                await driver.unpublish(config, endpoint)
                await driver.leave(config, endpoint)
            except Exception as exc:
                log.warning("%s: leaving %s: %s", cid[:12], network.name,
                            driver_error(exc, "leaving").message)
        if record.owned_netns and record.netns:
            try:
                await netlink.netlink(netns.delete_netns, record.netns)
            except OSError as exc:
                log.warning("%s: removing its network namespace: %s", cid[:12], exc)
        await remote_ipam.release_addresses(self.catalog.ipam_drivers, self.catalog.records,
                                            record.endpoints)
        self._release(record)
        if self.records.get(cid) is record:
            del self.records[cid]
        try:
            await self.store.delete(cid)
        except OSError as exc:
            log.warning("%s: deleting its attachment record: %s", cid[:12], exc)

    async def detach(self, container_id: str) -> None:
        """The container stopped (or is being removed): free its namespace, addresses,
        host ports, rules and names. Idempotent; never raises."""
        lock = self._locks[container_id]
        async with lock:
            record = self.records.get(container_id)
            if record is not None:
                await self.teardown(record)
        # forget the lock only if nobody waits on it (a waiter holds this very object)
        if not lock.locked() and lock.statistics().tasks_waiting == 0:
            self._locks.pop(container_id, None)

    async def rename(self, container_id: str, new_name: str) -> None:
        """A running container was renamed: its DNS names follow."""
        async with self._locks[container_id]:
            record = self.records.get(container_id)
            if record is None:
                return
            old = record.name
            record.name = new_name
            for ep in record.endpoints:
                ep.dns_names = [new_name if n == old else n for n in ep.dns_names]
            await self.store.save(container_id, record)
            self.dns.register(record)


__all__ = ["Attachments", "driver_endpoint", "join_endpoint", "published"]
