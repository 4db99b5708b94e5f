"""`NetworkService`: networks, container attachments, addresses, ports and names.

One per daemon. It keeps the network records, runs the drivers, makes each container's
network namespace, hands out addresses and host ports, serves DNS, and writes what a
container needs in /etc. The container manager calls it at four moments:

    networking = service.validate_container_networking(...)   # create: store in the record
    attachment = await service.attach(info)                   # start, before the runtime
    await service.detach(container_id)                        # exit and removal (idempotent)
    await service.restore(running_ids)                        # daemon start, once

and the network API (`engine.api.handlers.networks`) calls the rest. Everything the
kernel holds for a running container is described by its `AttachmentRecord`, saved
before the kernel objects are made and deleted after they are gone, so after any crash
`restore` can re-adopt what still runs and tear down what doesn't.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import attrs
import trio

from engine import ids
from engine.errors import (
    Conflict,
    EngineError,
    Forbidden,
    InvalidParameter,
    NotFound,
    SystemFailure,
)
from engine.filtering import label_matches
from engine.kernel import netlink, netns
from engine.networks import etcfiles, ipam
from engine.networks.dns import DNSServer, DNSSockets, HostResolvers, NameBook, parse_upstream
from engine.networks.model import (
    Attachment,
    AttachmentRecord,
    ContainerDirectory,
    ContainerInfo,
    ContainerNetworking,
    EndpointRequest,
    EndpointState,
    IPAMConfig,
    NetworkRecord,
    PortRequest,
    PortState,
)
from engine.networks.ports import PortAllocationError, PortAllocator, requests_from_bindings
from engine.store import RecordStore
from plugins.network_contract import (
    DriverContext,
    Endpoint,
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriver,
    NetworkDriverError,
    PublishedPort,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "moorage"
RESTORE_WAIT = 120.0  # how long a start waits for the start-up restore to finish
LAST_ADDRESSES = 4096  # containers whose previous address is offered to them again
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,6}$")
_NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

BRIDGE_OPTIONS_DEFAULT = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.driver.mtu": "1500",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.frozen
class NetworkOptions:
    """The daemon's network settings (from `moord` flags / daemon.toml).

    - `prefix` (`--network-prefix`): names every host object of this daemon: the
      default bridge `<prefix>0`, other bridges `<prefix>-<id>`, veths `<prefix>…`, the
      nftables table `ip <prefix>`. Two daemons on one host need different prefixes.
    - `default_bridge_subnet` (`--default-bridge-subnet`, Docker's `--bip` idea): the
      default network's subnet; "" chooses 172.17.0.0/16, or the first free pool if
      the host already uses it.
    - `default_bridge_mtu`; `ephemeral_ports` for `-p PORT` and `-P`;
      `dns_port` (53; tests may use another).
    """

    prefix: str = DEFAULT_PREFIX
    default_bridge_subnet: str = ""
    default_bridge_mtu: int = 1500
    ephemeral_ports: tuple[int, int] = (32768, 60999)
    dns_port: int = 53

    def __attrs_post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"network prefix {self.prefix!r}: 1 to 7 lowercase letters or digits, "
                             "starting with a letter")

    @property
    def default_bridge(self) -> str:
        return f"{self.prefix}0"


def _driver_error(exc: BaseException, what: str) -> EngineError:
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, InvalidNetworkOption):
        return InvalidParameter(str(exc))
    if isinstance(exc, NetworkDriverError):
        return SystemFailure(f"{what}: {exc}")
    return SystemFailure(f"{what}: {exc.__class__.__name__}: {exc}")


@attrs.define(eq=False)
class NetworkService:
    options: NetworkOptions
    data_root: Path
    exec_root: Path
    drivers: dict[str, NetworkDriver]
    network_store: RecordStore[NetworkRecord]
    attachment_store: RecordStore[AttachmentRecord]
    networks: dict[str, NetworkRecord] = attrs.field(factory=dict)
    attachments: dict[str, AttachmentRecord] = attrs.field(factory=dict)
    containers: ContainerDirectory | None = None
    pools: dict[str, ipam.AddressPool] = attrs.field(factory=dict)
    ports: PortAllocator = attrs.field(factory=PortAllocator)
    book: NameBook = attrs.field(factory=NameBook)
    dns: DNSServer | None = None
    resolvers: HostResolvers = attrs.field(factory=HostResolvers)
    _nursery: trio.Nursery | None = None
    _dns_scopes: dict[str, trio.CancelScope] = attrs.field(factory=dict)
    _locks: defaultdict[str, trio.Lock] = attrs.field(factory=lambda: defaultdict(trio.Lock))
    _network_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _restored: trio.Event = attrs.field(factory=trio.Event)
    _last_address: dict[tuple[str, str], ipaddress.IPv4Address] = attrs.field(factory=dict)

    # opening ------------------------------------------------------------------------
    @classmethod
    async def open(cls, *, data_root: Path, exec_root: Path, drivers: Mapping[str, NetworkDriver],
                   options: NetworkOptions | None = None, durable: bool = True) -> NetworkService:
        """Load the records and make sure `bridge`, `host` and `none` exist.

        `drivers` by name (see `drivers_from_plugins`); needs at least `bridge`, `host`
        and `null`. Call `run` next (in the daemon's nursery), then `restore`.
        """
        options = options or NetworkOptions()
        for needed in ("bridge", "host", "null"):
            if needed not in drivers:
                raise SystemFailure(f"the {needed!r} network driver is not registered")
        network_store: RecordStore[NetworkRecord] = RecordStore(
            data_root / "state" / "networks", NetworkRecord, durable=durable)
        # what the kernel holds for this boot is kept where the kernel state is: under the
        # exec root (a tmpfs). It must survive moord dying (the page cache does), not the
        # host (a reboot takes the namespaces and links with it), so no fsync is needed.
        attachment_store: RecordStore[AttachmentRecord] = RecordStore(
            exec_root / "endpoints", AttachmentRecord, durable=False)
        networks = await trio.to_thread.run_sync(network_store.load_all)
        attachments = await trio.to_thread.run_sync(attachment_store.load_all)
        service = cls(options, data_root, exec_root, dict(drivers), network_store, attachment_store,
                      {r.id: r for r in networks.values()}, dict(attachments))
        service.ports = PortAllocator(ephemeral=options.ephemeral_ports)
        service.dns = DNSServer(service.book, service.resolvers)
        await service._ensure_predefined()
        for record in service.networks.values():
            service._open_pool(record)
        return service

    def bind_containers(self, containers: ContainerDirectory) -> None:
        """Give the service the container manager's view (connect, disconnect, inspect)."""
        self.containers = containers

    async def _ensure_predefined(self) -> None:
        by_name = {r.name: r for r in self.networks.values()}
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            record = by_name.get(name)
            if record is None:
                record = NetworkRecord(id=ids.new_id(), name=name, driver=driver, created=_now())
                if name == "bridge":
                    await self._default_bridge_ipam(record)
                await self.network_store.save(record.id, record)
                self.networks[record.id] = record
            elif name == "bridge":
                await self._default_bridge_ipam(record, existing=True)

    async def _default_bridge_ipam(self, record: NetworkRecord, *, existing: bool = False) -> None:
        wanted = self.options.default_bridge_subnet
        options = dict(BRIDGE_OPTIONS_DEFAULT)
        options["com.docker.network.bridge.name"] = self.options.default_bridge
        options["com.docker.network.driver.mtu"] = str(self.options.default_bridge_mtu)
        changed = record.options != options
        record.options = options
        if wanted:
            config = ipam.validate_config(IPAMConfig(subnet=wanted))
            if record.pool is None or record.pool.subnet != config.subnet:
                record.ipam = [config]
                changed = True
        elif record.pool is None:
            taken = await self._taken_subnets(exclude=record.id)
            subnet = ipam.pick_subnet(taken, skip_default=False)
            record.ipam = [ipam.validate_config(IPAMConfig(), subnet=subnet)]
            changed = True
        if existing and changed:
            await self.network_store.save(record.id, record)

    async def _taken_subnets(self, *, exclude: str = "") -> list[ipaddress.IPv4Network]:
        """Subnets a new network must avoid: the host's routes and addresses (those on our
        own bridges aside) and our other networks' subnets."""
        host = await netlink.netlink(netlink.host_networks)
        ours = {self.bridge_name(r) for r in self.networks.values() if r.driver == "bridge"}
        taken = [r for r, dev in zip(host.routes, host.route_devices, strict=False) if dev not in ours]
        taken += [a.network for a in host.addresses if not a.ip.is_loopback]
        for record in self.networks.values():
            if record.id != exclude and record.pool is not None and record.pool.subnet:
                taken.append(ipaddress.IPv4Network(record.pool.subnet))
        return taken

    def bridge_name(self, record: NetworkRecord) -> str:
        given = record.options.get("com.docker.network.bridge.name")
        if given:
            return given
        return f"{self.options.prefix}-{record.id[:14 - len(self.options.prefix)]}"

    def _open_pool(self, record: NetworkRecord) -> None:
        driver = self.drivers.get(record.driver)
        if driver is not None and driver.uses_ipam and record.pool is not None:
            self.pools[record.id] = ipam.AddressPool.of(record.pool)

    # running --------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the DNS servers' nursery; set the drivers up. Start with `nursery.start`."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for name, driver in self.drivers.items():
                context = DriverContext(
                    prefix=self.options.prefix,
                    state_dir=self.data_root / "state" / "network-drivers" / name,
                    run_dir=self.exec_root / "network-drivers" / name,
                    spawn=self._spawn,
                )
                try:
                    await driver.setup(context)
                except Exception:
                    log.exception("network driver %s failed to set up", name)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.ports.close()

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn)

    async def restore(self, running: Iterable[str]) -> None:
        """Daemon start: make every network real again (a reboot removed the bridges),
        re-adopt the attachments of containers still running (addresses, host ports,
        names, links and rules checked and re-made if missing) and tear down those of
        containers that are not. Call once, after `run` has started and after the
        container manager knows which containers run — and before it starts any."""
        alive = set(running)
        for record in list(self.networks.values()):
            try:
                await self._driver(record).create_network(self.network_config(record))
            except Exception as exc:
                log.error("network %s could not be set up: %s", record.name,
                          _driver_error(exc, "setting up").message)
            await self._start_dns(record)
        for cid, attached in list(self.attachments.items()):
            if cid in alive:
                try:
                    await self._readopt(attached)
                except Exception:
                    log.exception("re-adopting the network of %s failed", cid[:12])
            else:
                await self._teardown(attached)
        await netlink.netlink(self._sweep_namespaces)
        for name, driver in self.drivers.items():
            try:
                await driver.ready()
            except Exception:
                log.exception("network driver %s failed to apply its state", name)
        self._restored.set()

    def _sweep_namespaces(self) -> None:
        """Namespace files no attachment accounts for (moord died between removing a
        record and the file) go; their veths go with them."""
        directory = self.exec_root / "netns"
        if not directory.is_dir():
            return
        for entry in directory.iterdir():
            if entry.name not in self.attachments:
                try:
                    netns.delete_netns(entry)
                    log.info("removed the stray network namespace %s", entry)
                except OSError as exc:
                    log.warning("removing the stray network namespace %s: %s", entry, exc)

    async def _readopt(self, record: AttachmentRecord) -> None:
        cid = record.container_id
        for ep in record.endpoints:
            pool = self.pools.get(ep.network_id)
            if pool is not None and ep.ip:
                try:
                    pool.take(ipaddress.IPv4Address(ep.ip), ep.endpoint_id)
                except EngineError as exc:
                    log.warning("%s: %s", cid[:12], exc.message)
        for port in record.ports:
            warning = self.ports.restore(cid, port.protocol, port.host_ip, port.host_port)
            if warning:
                log.warning("%s: %s", cid[:12], warning)
        if record.netns not in ("", "host") and not netns.is_netns(record.netns):
            log.warning("%s: its network namespace %s is gone", cid[:12], record.netns)
            return
        for ep in record.endpoints:
            network = self.networks.get(ep.network_id)
            if network is None:
                continue
            driver = self._driver(network)
            config = self.network_config(network)
            endpoint = self._endpoint(record, ep)
            try:
                await driver.join(config, endpoint)
                ports = [p for p in record.ports if p.network_id == ep.network_id]
                if ports:
                    await driver.publish(config, endpoint, [_published(p) for p in ports])
            except Exception as exc:
                log.error("%s: re-joining %s failed: %s", cid[:12], network.name,
                          _driver_error(exc, "joining").message)
        self._register_names(record)

    async def _start_dns(self, record: NetworkRecord) -> None:
        """Bind the network's DNS server on its gateway (a failure is logged: its containers
        then get the host's resolvers in resolv.conf)."""
        pool = self.pools.get(record.id)
        if pool is None or self._nursery is None or self.dns is None or record.id in self._dns_scopes:
            return
        address = str(pool.gateway)
        try:
            sockets = await self.dns.bind(address, self.options.dns_port)
        except OSError as exc:
            log.warning("no DNS server for network %s on %s:%d: %s; its containers use the "
                        "host's resolvers", record.name, address, self.options.dns_port, exc)
            return
        scope = trio.CancelScope()
        self._dns_scopes[record.id] = scope
        self._nursery.start_soon(self._serve_dns, record.id, sockets, scope)

    async def _serve_dns(self, network_id: str, sockets: DNSSockets, scope: trio.CancelScope) -> None:
        assert self.dns is not None
        with scope:
            try:
                await self.dns.serve_bound(network_id, sockets)
            except Exception:
                log.exception("the DNS server of network %s stopped", network_id[:12])
        if self._dns_scopes.get(network_id) is scope:
            del self._dns_scopes[network_id]

    def _serves_dns(self, network_id: str) -> bool:
        return network_id in self._dns_scopes

    def _stop_dns(self, network_id: str) -> None:
        scope = self._dns_scopes.pop(network_id, None)
        if scope is not None:
            scope.cancel()

    # lookups --------------------------------------------------------------------------
    def _driver(self, record: NetworkRecord) -> NetworkDriver:
        driver = self.drivers.get(record.driver)
        if driver is None:
            raise NotFound(f"plugin \"{record.driver}\" not found")
        return driver

    def get(self, ref: str) -> NetworkRecord:
        """A network by full ID, name, or unique ID prefix (Docker's order)."""
        if ref in self.networks:
            return self.networks[ref]
        for record in self.networks.values():
            if record.name == ref:
                return record
        if ids.is_hex_prefix(ref):
            found = [r for r in self.networks.values() if r.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(
                    f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def by_name(self, name: str) -> NetworkRecord:
        return self.get(name)

    @property
    def default_bridge(self) -> NetworkRecord:
        return next(r for r in self.networks.values() if r.name == "bridge")

    def network_config(self, record: NetworkRecord) -> NetworkConfig:
        pool = self.pools.get(record.id)
        return NetworkConfig(
            id=record.id,
            name=record.name,
            subnet=pool.subnet if pool else None,
            gateway=pool.gateway if pool else None,
            internal=record.internal,
            options=dict(record.options),
        )

    def _endpoint(self, record: AttachmentRecord, ep: EndpointState) -> Endpoint:
        return Endpoint(
            id=ep.endpoint_id,
            container_id=record.container_id,
            netns=record.netns,
            ifname=ep.ifname,
            address=ipaddress.IPv4Interface(ep.address) if ep.address else None,
            gateway=ipaddress.IPv4Address(ep.gateway) if ep.default_route and ep.gateway else None,
            mac=ep.mac,
        )

    def endpoints_on(self, network_id: str) -> list[tuple[AttachmentRecord, EndpointState]]:
        """The live endpoints of a network (running containers)."""
        return [(r, ep) for r in self.attachments.values() for ep in r.endpoints
                if ep.network_id == network_id]

    def attachment(self, container_id: str) -> AttachmentRecord | None:
        return self.attachments.get(container_id)

    def netns_path(self, container_id: str) -> Path:
        return self.exec_root / "netns" / container_id

    # the container's side -----------------------------------------------------------------
    def _resolve_mode(self, network_mode: str) -> NetworkRecord:
        mode = network_mode or "default"
        if mode in ("default", "bridge"):
            return self.default_bridge
        if mode.startswith("container:"):
            raise InvalidParameter("network mode container:<name> is not supported yet")
        return self.get(mode)

    def validate_container_networking(
        self, *, network_mode: str, endpoints: Mapping[str, EndpointRequest] | None = None,
        port_bindings: Mapping[str, Sequence[tuple[str, str]]] | None = None,
        publish_all: bool = False, exposed_ports: Iterable[str] = (),
        dns: Sequence[str] = (), dns_search: Sequence[str] = (), dns_options: Sequence[str] = (),
        extra_hosts: Sequence[str] = (), mac_address: str = "",
    ) -> tuple[ContainerNetworking, list[str]]:
        """Check a create request's networking with Docker's rules and words.

        Returns what to store in the container's record and the warnings for the create
        response. `endpoints` is `NetworkingConfig.EndpointsConfig` parsed with
        `engine.api.wire.networks.parse_endpoint_request`, keyed as the client sent it
        (names or IDs); `port_bindings` is `HostConfig.PortBindings` as
        {"80/tcp": [(HostIp, HostPort), …]}.
        """
        warnings: list[str] = []
        first = self._resolve_mode(network_mode)
        ordered: dict[str, EndpointRequest] = {first.id: EndpointRequest()}
        for key, request in (endpoints or {}).items():
            record = self._resolve_mode(key) if key in ("default", "bridge") else self.get(key)
            ordered[record.id] = request
        if mac_address and not ordered[first.id].mac_address:
            ordered[first.id] = attrs.evolve(ordered[first.id], mac_address=mac_address)
        exclusive = [self.networks[n] for n in ordered
                     if self._driver(self.networks[n]).namespace != "private"]
        if exclusive and len(ordered) > 1:
            which = "host" if exclusive[0].driver == "host" else "private (none)"
            raise InvalidParameter(
                f"container cannot be connected to multiple networks with one of the networks in "
                f"{which} mode")
        for nid, request in ordered.items():
            self._check_request(self.networks[nid], request)
        requests = requests_from_bindings(port_bindings or {}, publish_all=publish_all,
                                          exposed=exposed_ports)
        if exclusive:
            if requests and exclusive[0].driver == "host":
                warnings.append("Published ports are discarded when using host network mode")
            requests = []
        for server in dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidParameter(f"{server} is not an ip address") from None
        for entry in extra_hosts:
            problem = etcfiles.validate_extra_host(entry)
            if problem:
                raise InvalidParameter(problem)
        mode = first.name if first.predefined else first.id
        return ContainerNetworking(
            mode=mode,
            networks=ordered,
            ports=requests,
            dns=list(dns),
            dns_search=list(dns_search),
            dns_options=list(dns_options),
            extra_hosts=list(extra_hosts),
        ), warnings

    def _check_request(self, record: NetworkRecord, request: EndpointRequest) -> None:
        driver = self._driver(record)
        if request.aliases and driver.namespace != "private":
            raise InvalidParameter("network-scoped aliases are only supported for user-defined "
                                   "networks")
        if request.mac_address and not ipam.valid_mac(request.mac_address):
            raise InvalidParameter(f"invalid MAC address: {request.mac_address}")
        if request.ipv4_address:
            if record.name == "bridge":
                raise InvalidParameter(
                    "user specified IP address is supported on user defined networks only")
            if not driver.uses_ipam or record.pool is None or not record.subnet_given:
                raise InvalidParameter("user specified IP address is supported only when "
                                       "connecting to networks with user configured subnets")
            address = ipam.parse_address(request.ipv4_address, "IPv4 address")
            pool = self.pools.get(record.id)
            if pool is not None and (address not in pool.subnet or address in (
                    pool.subnet.network_address, pool.subnet.broadcast_address)):
                raise InvalidParameter(f"Invalid address {address}: It does not belong to any of "
                                       "this network's subnets")

    async def attach(self, info: ContainerInfo) -> Attachment:
        """Network a container that is about to start; see `Attachment` for what to do
        with the result. On failure nothing is left behind (a port conflict is Docker's
        "Bind for 0.0.0.0:8080 failed: port is already allocated")."""
        with trio.move_on_after(RESTORE_WAIT):
            await self._restored.wait()
        if not self._restored.is_set():
            raise SystemFailure("networking is not ready: NetworkService.restore was not called")
        cid = info.id
        async with self._locks[cid]:
            stale = self.attachments.get(cid)
            if stale is not None:
                await self._teardown(stale)
            records = []
            for nid in info.networking.networks:
                record = self.networks.get(nid)
                if record is None:
                    raise NotFound(f"network {nid} not found")
                records.append(record)
            # no network at all (disconnected from every one): a namespace of its own with
            # only `lo`, which `network connect` can still join live
            namespace = self._driver(records[0]).namespace if records else "private"
            if namespace == "host":
                return self._host_attachment(info)
            if namespace == "isolated":
                return self._isolated_attachment(info)
            return await self._attach_private(info, records)

    def _host_attachment(self, info: ContainerInfo) -> Attachment:
        net = info.networking
        record = AttachmentRecord(info.id, info.name, info.hostname, "host", _now())
        gateway = self._host_gateway(None)
        hosts = etcfiles.hosts_file(mode="host", hostname=info.hostname,
                                    extra_hosts=net.extra_hosts, host_gateway=gateway)
        resolv = etcfiles.resolv_conf(
            mode="host", host=etcfiles.ResolvConf.parse(etcfiles.read_text("/etc/resolv.conf")),
            dns=net.dns, dns_search=net.dns_search, dns_options=net.dns_options)
        return Attachment("host", False, hosts, resolv, record)

    def _isolated_attachment(self, info: ContainerInfo) -> Attachment:
        net = info.networking
        record = AttachmentRecord(info.id, info.name, info.hostname, "", _now())
        hosts = etcfiles.hosts_file(mode="none", hostname=info.hostname,
                                    domainname=info.domainname, extra_hosts=net.extra_hosts,
                                    host_gateway=self._host_gateway(None))
        resolv = etcfiles.resolv_conf(
            mode="none", host=etcfiles.ResolvConf.parse(etcfiles.read_text("/etc/resolv.conf")),
            dns=net.dns, dns_search=net.dns_search, dns_options=net.dns_options)
        return Attachment("", True, hosts, resolv, record)

    def _host_gateway(self, record: AttachmentRecord | None) -> str:
        if record is not None:
            for ep in record.endpoints:
                if ep.default_route and ep.gateway:
                    return ep.gateway
        pool = self.pools.get(self.default_bridge.id)
        return str(pool.gateway) if pool else ""

    def _primary(self, records: Sequence[NetworkRecord]) -> NetworkRecord | None:
        """The network that carries the default route and the published ports."""
        for record in records:
            if not record.internal and record.id in self.pools:
                return record
        return None

    async def _attach_private(self, info: ContainerInfo, records: list[NetworkRecord]) -> Attachment:
        cid = info.id
        net = info.networking
        path = str(self.netns_path(cid))
        record = AttachmentRecord(cid, info.name, info.hostname, path, _now(),
                                  dns=list(net.dns), owned_netns=True)
        primary = self._primary(records)
        try:
            for index, network in enumerate(records):
                request = net.networks.get(network.id, EndpointRequest())
                ep = self._allocate_endpoint(info, network, request, f"eth{index}",
                                             default_route=network is primary)
                record.endpoints.append(ep)
            if primary is not None and net.ports:
                record.ports = self._allocate_ports(info, record, primary, net.ports)
        except BaseException:
            self._release(record)
            raise
        try:
            await self.attachment_store.save(cid, record)
            self.attachments[cid] = record
            await netlink.netlink(netns.create_netns, path)
            for ep in record.endpoints:
                network = self.networks[ep.network_id]
                config = self.network_config(network)
                endpoint = self._endpoint(record, ep)
                driver = self._driver(network)
                try:
                    await driver.join(config, endpoint)
                    ports = [p for p in record.ports if p.network_id == network.id]
                    if ports:
                        await driver.publish(config, endpoint, [_published(p) for p in ports])
                except Exception as exc:
                    raise _driver_error(
                        exc, f"failed to set up container networking on {network.name}") from None
            self._register_names(record)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self._teardown(record)
            if isinstance(exc, OSError):
                raise SystemFailure(f"failed to set up container networking: {exc}") from None
            raise
        return Attachment(path, True, self._hosts_for(info, record), self._resolv_for(info, record),
                          record)

    def _allocate_endpoint(self, info: ContainerInfo, network: NetworkRecord, request: EndpointRequest,
                           ifname: str, *, default_route: bool) -> EndpointState:
        endpoint_id = ids.new_id()
        pool = self.pools.get(network.id)
        address = gateway = mac = ""
        static = False
        if pool is not None:
            if request.ipv4_address:
                chosen = ipaddress.IPv4Address(request.ipv4_address)
                pool.take(chosen, endpoint_id)
                static = True
            else:
                chosen = pool.allocate(endpoint_id, self._last_address.get((network.id, info.id)))
            address = str(pool.interface(chosen))
            gateway = str(pool.gateway)
            mac = request.mac_address or ipam.mac_for(chosen)
        else:
            mac = request.mac_address
        return EndpointState(
            network_id=network.id, endpoint_id=endpoint_id, ifname=ifname, address=address,
            gateway=gateway, default_route=default_route, mac=mac.lower(),
            aliases=list(request.aliases), dns_names=_dns_names(info, request.aliases),
            static=static,
        )

    def _allocate_ports(self, info: ContainerInfo, record: AttachmentRecord, primary: NetworkRecord,
                        requests: Sequence[PortRequest]) -> list[PortState]:
        ep = next(e for e in record.endpoints if e.network_id == primary.id)
        default_ip = primary.options.get("com.docker.network.bridge.host_binding_ipv4", "")
        bound: list[PortState] = []
        for request in requests:
            host_ip = request.host_ip or default_ip
            try:
                port = self.ports.allocate(info.id, request.protocol, host_ip, request.host_port,
                                           request.host_port_end)
            except PortAllocationError as exc:
                raise SystemFailure(
                    f"failed to set up container networking: driver failed programming external "
                    f"connectivity on endpoint {info.name} ({ep.endpoint_id}): {exc}") from None
            bound.append(PortState(request.protocol, host_ip or "0.0.0.0", port,
                                   request.container_port, primary.id, ep.ip))
        return bound

    def _register_names(self, record: AttachmentRecord) -> None:
        cid = record.container_id
        self.book.remove(cid)
        forwards = False
        for ep in record.endpoints:
            network = self.networks.get(ep.network_id)
            if network is None or not ep.ip:
                continue
            forwards = forwards or not network.internal
            self.book.add(cid, ep.network_id, ep.ip, ep.dns_names)
        self.book.configure(cid, upstreams=[parse_upstream(s) for s in record.dns],
                            forwards=forwards)

    def _hosts_for(self, info: ContainerInfo, record: AttachmentRecord) -> str:
        return etcfiles.hosts_file(
            mode="network", hostname=info.hostname, domainname=info.domainname,
            addresses=[ep.ip for ep in record.endpoints if ep.ip],
            extra_hosts=info.networking.extra_hosts, host_gateway=self._host_gateway(record))

    def _resolv_for(self, info: ContainerInfo, record: AttachmentRecord) -> str:
        net = info.networking
        servers = []
        for ep in sorted(record.endpoints, key=lambda e: not e.default_route):
            if ep.gateway and self._serves_dns(ep.network_id) and ep.gateway not in servers:
                servers.append(ep.gateway)
        host = etcfiles.ResolvConf.parse(etcfiles.read_text("/etc/resolv.conf"))
        return etcfiles.resolv_conf(mode="network", host=host, nameservers=servers, dns=net.dns,
                                    dns_search=net.dns_search, dns_options=net.dns_options)

    def _release(self, record: AttachmentRecord) -> None:
        for ep in record.endpoints:
            pool = self.pools.get(ep.network_id)
            if pool is not None:
                if ep.ip:
                    key = (ep.network_id, record.container_id)
                    self._last_address.pop(key, None)
                    self._last_address[key] = ipaddress.IPv4Address(ep.ip)
                    if len(self._last_address) > LAST_ADDRESSES:  # the oldest go first
                        del self._last_address[next(iter(self._last_address))]
                pool.release(ep.endpoint_id)
        self.ports.release(record.container_id)

    async def _teardown(self, record: AttachmentRecord) -> None:
        """Undo an attachment as far as it got; never raises (failures are logged)."""
        cid = record.container_id
        self.book.remove(cid)
        for ep in reversed(record.endpoints):
            network = self.networks.get(ep.network_id)
            if network is None:
                continue
            try:
                driver = self._driver(network)
                config = self.network_config(network)
                endpoint = self._endpoint(record, ep)
                await driver.unpublish(config, endpoint)
                await driver.leave(config, endpoint)
            except Exception as exc:
                log.warning("%s: leaving %s: %s", cid[:12], network.name,
                            _driver_error(exc, "leaving").message)
        if record.owned_netns and record.netns:
            try:
                await netlink.netlink(netns.delete_netns, record.netns)
            except OSError as exc:
                log.warning("%s: removing its network namespace: %s", cid[:12], exc)
        self._release(record)
        if self.attachments.get(cid) is record:
            del self.attachments[cid]
        try:
            await self.attachment_store.delete(cid)
        except OSError as exc:
            log.warning("%s: deleting its attachment record: %s", cid[:12], exc)

    async def detach(self, container_id: str) -> None:
        """The container stopped (or is being removed): free its namespace, addresses,
        host ports, rules and names. Idempotent; never raises."""
        lock = self._locks[container_id]
        async with lock:
            record = self.attachments.get(container_id)
            if record is not None:
                await self._teardown(record)
        # forget the lock only if nobody waits on it (a waiter holds this very object)
        if not lock.locked() and lock.statistics().tasks_waiting == 0:
            self._locks.pop(container_id, None)

    async def rename(self, container_id: str, new_name: str) -> None:
        """A running container was renamed: its DNS names follow."""
        async with self._locks[container_id]:
            record = self.attachments.get(container_id)
            if record is None:
                return
            old = record.name
            record.name = new_name
            for ep in record.endpoints:
                ep.dns_names = [new_name if n == old else n for n in ep.dns_names]
            await self.attachment_store.save(container_id, record)
            self._register_names(record)

    # network API ------------------------------------------------------------------------
    async def create_network(self, *, name: str, driver: str = "bridge",
                             ipam_configs: Sequence[IPAMConfig] = (), ipam_driver: str = "",
                             ipam_options: Mapping[str, str] | None = None, internal: bool = False,
                             attachable: bool = False, labels: Mapping[str, str] | None = None,
                             options: Mapping[str, str] | None = None, enable_ipv6: bool = False,
                             enable_ipv4: bool = True, ingress: bool = False,
                             config_only: bool = False, config_from: str = "",
                             scope: str = "") -> NetworkRecord:
        """`POST /networks/create`, with Docker's refusals."""
        if not name:
            raise InvalidParameter("network name cannot be empty")
        if not _NETWORK_NAME.match(name):
            raise InvalidParameter(f"invalid network name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                   "are allowed")
        driver = driver or "bridge"
        if driver == "none":
            driver = "null"
        plugin = self.drivers.get(driver)
        if plugin is None:
            raise NotFound(f"plugin \"{driver}\" not found")
        if plugin.singleton:
            raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
        if enable_ipv6:
            raise InvalidParameter("IPv6 networks are not supported by moorage yet")
        if not enable_ipv4:
            raise InvalidParameter("a network without IPv4 is not supported by moorage")
        if ingress or config_only or config_from:
            raise InvalidParameter("swarm networks (ingress, config-only, config-from) are not "
                                   "supported by moorage")
        if scope not in ("", "local"):
            raise InvalidParameter(f"scope {scope!r} is not supported: moorage networks are local")
        if ipam_driver not in ("", "default"):
            raise InvalidParameter(f"IPAM driver \"{ipam_driver}\" is not supported by moorage")
        configs = [c for c in ipam_configs
                   if not (c.subnet and ":" in c.subnet)]
        if len(configs) != len(ipam_configs):
            raise InvalidParameter("IPv6 subnets are not supported by moorage yet")
        if len(configs) > 1:
            raise InvalidParameter("moorage supports one IPv4 subnet per network")
        try:
            checked_options = plugin.validate_options(dict(options or {}))
        except InvalidNetworkOption as exc:
            raise InvalidParameter(str(exc)) from None
        async with self._network_lock:
            if any(r.name == name for r in self.networks.values()):
                raise Conflict(f"network with name {name} already exists")
            record = NetworkRecord(
                id=ids.new_id(), name=name, driver=driver, created=_now(), internal=internal,
                attachable=attachable, labels=dict(labels or {}), options=checked_options,
                ipam_options=dict(ipam_options or {}),
            )
            bridge_name = checked_options.get("com.docker.network.bridge.name")
            if bridge_name and any(self.bridge_name(r) == bridge_name
                                   for r in self.networks.values() if r.driver == "bridge"):
                raise Conflict(f"bridge name {bridge_name} is already used by another network")
            if plugin.uses_ipam:
                record.ipam = [await self._network_ipam(configs)]
                record.subnet_given = bool(configs and configs[0].subnet)
            elif configs:
                raise InvalidParameter(f"the {driver} driver does not take IPAM configuration")
            await self.network_store.save(record.id, record)
            self.networks[record.id] = record
            self._open_pool(record)
            try:
                await plugin.create_network(self.network_config(record))
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    self.networks.pop(record.id, None)
                    self.pools.pop(record.id, None)
                    try:
                        await plugin.delete_network(self.network_config(record))
                    except Exception:
                        log.exception("cleaning up after a failed network create")
                    await self.network_store.delete(record.id)
                if isinstance(exc, Exception):
                    raise _driver_error(exc, f"creating network {name}") from None
                raise
            await self._start_dns(record)
            return record

    async def _network_ipam(self, configs: Sequence[IPAMConfig]) -> IPAMConfig:
        taken_ours = [ipaddress.IPv4Network(r.pool.subnet) for r in self.networks.values()
                      if r.pool is not None and r.pool.subnet]
        if configs and configs[0].subnet:
            config = ipam.validate_config(configs[0])
            subnet = ipaddress.IPv4Network(config.subnet)
            if any(subnet.overlaps(t) for t in taken_ours):
                raise ipam.overlap_error()
            return config
        if configs:
            ipam.validate_config(configs[0])  # says what is missing
        subnet = ipam.pick_subnet(await self._taken_subnets())
        return ipam.validate_config(IPAMConfig(), subnet=subnet)

    async def delete_network(self, ref: str) -> None:
        """`DELETE /networks/{id}`."""
        async with self._network_lock:
            record = self.get(ref)
            if record.predefined:
                raise Forbidden(f"{record.name} is a pre-defined network and cannot be removed")
            if self.endpoints_on(record.id):
                raise Conflict(f"error while removing network: network {record.name} id "
                               f"{record.id} has active endpoints")
            await self._delete(record)

    async def _delete(self, record: NetworkRecord) -> None:
        self._stop_dns(record.id)
        try:
            await self._driver(record).delete_network(self.network_config(record))
        except Exception as exc:
            raise _driver_error(exc, f"removing network {record.name}") from None
        await self.network_store.delete(record.id)
        self.networks.pop(record.id, None)
        self.pools.pop(record.id, None)

    async def prune(self, *, until: dt.datetime | None = None,
                    labels: Sequence[str] = (), not_labels: Sequence[str] = ()) -> list[str]:
        """`POST /networks/prune`: every user network without active endpoints; names."""
        deleted: list[str] = []
        async with self._network_lock:
            for record in sorted(self.networks.values(), key=lambda r: r.created):
                if record.predefined or self.endpoints_on(record.id):
                    continue
                if until is not None and record.created >= until:
                    continue
                if labels and not all(label_matches(record.labels, f) for f in labels):
                    continue
                if not_labels and any(label_matches(record.labels, f) for f in not_labels):
                    continue
                try:
                    await self._delete(record)
                except EngineError as exc:
                    log.warning("pruning network %s: %s", record.name, exc.message)
                    continue
                deleted.append(record.name)
        return deleted

    def list_networks(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[NetworkRecord]:
        """`GET /networks`, with Docker's filters (driver, id, label, name, scope, type,
        dangling)."""
        filters = dict(filters or {})
        known = {"driver", "id", "label", "name", "scope", "type", "dangling"}
        for key in filters:
            if key not in known:
                raise InvalidParameter(f"invalid filter '{key}'")
        for value in filters.get("type", []):
            if value not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{value}'")
        for value in filters.get("dangling", []):
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={value}'")
        result = []
        for record in sorted(self.networks.values(), key=lambda r: r.created):
            if not self._matches(record, filters):
                continue
            result.append(record)
        return result

    def _matches(self, record: NetworkRecord, filters: Mapping[str, Sequence[str]]) -> bool:
        def any_of(key: str, test: Callable[[str], bool]) -> bool:
            values = filters.get(key)
            return not values or any(test(v) for v in values)

        if not any_of("driver", lambda v: record.driver == v):
            return False
        if not any_of("id", lambda v: v in record.id):
            return False
        if not any_of("name", lambda v: v in record.name):
            return False
        if not any_of("scope", lambda v: v == record.scope):
            return False
        if not any_of("type", lambda v: (v == "builtin") == record.predefined):
            return False
        labels = filters.get("label")
        if labels and not all(label_matches(record.labels, f) for f in labels):
            return False
        for value in filters.get("dangling", []):
            dangling = value.lower() in ("true", "1")
            used = bool(self.endpoints_on(record.id)) or record.predefined
            if dangling == used:
                return False
        return True

    # connect / disconnect ------------------------------------------------------------------
    def _directory(self) -> ContainerDirectory:
        if self.containers is None:
            raise SystemFailure("the network service is not bound to the container manager")
        return self.containers

    async def connect(self, network_ref: str, container_ref: str,
                      request: EndpointRequest | None = None) -> None:
        """`POST /networks/{id}/connect`: live for a running container, in its record always."""
        record = self.get(network_ref)
        request = request or EndpointRequest()
        directory = self._directory()
        info = directory.find(container_ref)
        driver = self._driver(record)
        networking = info.networking
        current = list(networking.networks)
        current_drivers = [self._driver(self.networks[n]) for n in current if n in self.networks]
        if driver.namespace == "host" or any(d.namespace == "host" for d in current_drivers):
            raise Forbidden("container cannot be disconnected from host network or connected to "
                            "host network")
        if driver.namespace != "private" or any(d.namespace != "private" for d in current_drivers):
            raise Forbidden("container cannot be connected to multiple networks with one of the "
                            "networks in private (none) mode")
        if record.id in current:
            raise Forbidden(f"endpoint with name {info.name} already exists in network {record.name}")
        self._check_request(record, request)
        new_networks = dict(networking.networks)
        new_networks[record.id] = request
        updated = attrs.evolve(networking, networks=new_networks)
        async with self._locks[info.id]:
            live = self.attachments.get(info.id)
            if live is not None and live.owned_netns:
                await self._join_live(info, live, record, request)
            await directory.save_networking(info.id, updated)

    async def _join_live(self, info: ContainerInfo, live: AttachmentRecord, network: NetworkRecord,
                         request: EndpointRequest) -> None:
        used = {ep.ifname for ep in live.endpoints}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        ep = self._allocate_endpoint(info, network, request, ifname, default_route=False)
        live.endpoints.append(ep)
        try:
            await self.attachment_store.save(info.id, live)
            await self._driver(network).join(self.network_config(network), self._endpoint(live, ep))
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                live.endpoints.remove(ep)
                try:
                    await self._driver(network).leave(self.network_config(network),
                                                      self._endpoint(live, ep))
                except Exception:
                    log.exception("undoing a failed connect")
                pool = self.pools.get(network.id)
                if pool is not None:
                    pool.release(ep.endpoint_id)
                await self.attachment_store.save(info.id, live)
            if isinstance(exc, Exception):
                raise _driver_error(exc, f"connecting to {network.name}") from None
            raise
        self._register_names(live)

    async def disconnect(self, network_ref: str, container_ref: str, *, force: bool = False) -> None:
        """`POST /networks/{id}/disconnect`."""
        record = self.get(network_ref)
        directory = self._directory()
        info = directory.find(container_ref)
        networking = info.networking
        if record.id not in networking.networks:
            raise Forbidden(f"container {info.id} is not connected to network {record.name}")
        if self._driver(record).namespace == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to "
                            "host network")
        # the last network may go too: the container then has none (only `lo`), as in Docker
        new_networks = {k: v for k, v in networking.networks.items() if k != record.id}
        updated = attrs.evolve(networking, networks=new_networks)
        async with self._locks[info.id]:
            live = self.attachments.get(info.id)
            if live is not None:
                await self._leave_live(live, record)
            await directory.save_networking(info.id, updated)

    async def _leave_live(self, live: AttachmentRecord, network: NetworkRecord) -> None:
        found = [ep for ep in live.endpoints if ep.network_id == network.id]
        if not found:
            return
        ep = found[0]
        driver = self._driver(network)
        config = self.network_config(network)
        endpoint = self._endpoint(live, ep)
        try:
            await driver.unpublish(config, endpoint)
            await driver.leave(config, endpoint)
        except Exception as exc:
            raise _driver_error(exc, f"disconnecting from {network.name}") from None
        live.endpoints.remove(ep)
        gone = [p for p in live.ports if p.network_id == network.id]
        if gone:
            live.ports = [p for p in live.ports if p.network_id != network.id]
            self.ports.release(live.container_id)
            for p in live.ports:
                self.ports.restore(live.container_id, p.protocol, p.host_ip, p.host_port)
        pool = self.pools.get(network.id)
        if pool is not None:
            pool.release(ep.endpoint_id)
        await self.attachment_store.save(live.container_id, live)
        self._register_names(live)

    # views for inspect / ps ----------------------------------------------------------------
    def sandbox_id(self, container_id: str) -> str:
        record = self.attachments.get(container_id)
        if record is None:
            return ""
        return hashlib.sha256(f"{container_id}/{record.created.isoformat()}".encode()).hexdigest()

    def container_networks(self, networking: ContainerNetworking) -> list[NetworkRecord]:
        """The networks a container is configured on, in order (deleted ones left out)."""
        return [self.networks[n] for n in networking.networks if n in self.networks]

    def endpoint_driver_options(self, record: NetworkRecord, attachment: AttachmentRecord,
                                ep: EndpointState) -> dict[str, str]:
        driver = self.drivers.get(record.driver)
        if driver is None:
            return {}
        try:
            return dict(driver.endpoint_options(self.network_config(record),
                                                self._endpoint(attachment, ep)))
        except Exception:
            return {}

    def network_options(self, record: NetworkRecord) -> dict[str, str]:
        driver = self.drivers.get(record.driver)
        shown = {k: v for k, v in record.options.items() if not k.startswith("moorage.")}
        if driver is None:
            return shown
        try:
            return {k: v for k, v in driver.network_options(self.network_config(record)).items()
                    if not k.startswith("moorage.")}
        except Exception:
            return shown


def _published(p: PortState) -> PublishedPort:
    proto: Literal["tcp", "udp"] = "udp" if p.protocol == "udp" else "tcp"
    return PublishedPort(proto, p.host_ip or "0.0.0.0", p.host_port, p.container_ip,
                         p.container_port)


def _dns_names(info: ContainerInfo, aliases: Iterable[str]) -> list[str]:
    """Docker's DNSNames: the name, the aliases, the short ID, the hostname (deduplicated)."""
    names: list[str] = []
    for name in (info.name, *aliases, info.id[:12], info.hostname):
        if name and name not in names:
            names.append(name)
    return names


def drivers_from_plugins(results: Iterable[Sequence[NetworkDriver]]) -> dict[str, NetworkDriver]:
    """Every plugin's network drivers by name from `pm.hook.moorage_network_drivers()`
    (pluggy calls newest first, so later plugins replace earlier ones by name)."""
    drivers: dict[str, NetworkDriver] = {}
    for provided in reversed(list(results)):
        for driver in provided:
            if driver.name in drivers:
                log.info("network driver %r is replaced by a plugin", driver.name)
            drivers[driver.name] = driver
    return drivers


__all__ = ["NetworkOptions", "NetworkService", "drivers_from_plugins"]
