"""`NetworkCatalog`: the network records, their address pools and their drivers.

Every other part of the network service looks networks up here: by reference the way
Docker does (`get`), the driver a network runs on, the `NetworkConfig` a driver is
handed. The catalog also keeps the three pre-defined networks (`bridge`, `host`,
`none`) in being, and chooses subnets that avoid the host's and the other networks'.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

import attrs
import trio

from engine import ids
from engine.errors import EngineError, InvalidParameter, NotFound, SystemFailure
from engine.kernel import netlink
from engine.networks import ipam
from engine.networks.model import IPAMConfig, NetworkRecord
from engine.networks.options import NetworkOptions
from engine.store import RecordStore
from plugins.ipam_contract import IpamDriver
from plugins.network_contract import (
    InvalidNetworkOption,
    NetworkConfig,
    NetworkDriver,
    NetworkDriverError,
)

BRIDGE_OPTIONS_DEFAULT = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.driver.mtu": "1500",
}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def driver_error(exc: BaseException, what: str) -> EngineError:
    """A driver's failure in the engine's terms: a bad option is the client's fault,
    anything else the system's (`what` says what was being done)."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, InvalidNetworkOption):
        return InvalidParameter(str(exc))
    if isinstance(exc, NetworkDriverError):
        return SystemFailure(f"{what}: {exc}")
    return SystemFailure(f"{what}: {exc.__class__.__name__}: {exc}")


@attrs.define(eq=False)
class NetworkCatalog:
    options: NetworkOptions
    drivers: MutableMapping[str, NetworkDriver]  # a table that may find drivers lazily
    store: RecordStore[NetworkRecord]
    records: dict[str, NetworkRecord] = attrs.field(factory=dict)
    pools: dict[str, ipam.AddressPool] = attrs.field(factory=dict)  # IPv4, by network id
    pools6: dict[str, ipam.AddressPool] = attrs.field(factory=dict)  # IPv6 networks only
    #: held while networks are created, removed or pruned: one change at a time (not
    #: while a driver makes a network: see `creating`)
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    #: networks saved but whose driver is still making them, by id: their names and
    #: subnets are taken, but nothing can use or remove them yet
    creating: dict[str, NetworkRecord] = attrs.field(factory=dict)
    #: the host's machine ID: seeds the daemon's unique local IPv6 prefix
    host_id: str = ""
    #: IPAM drivers by name (`--ipam-driver`); moord's own IPAM is `default`
    ipam_drivers: Mapping[str, IpamDriver] = attrs.field(factory=dict)

    @classmethod
    async def open(cls, *, data_root: Path, drivers: MutableMapping[str, NetworkDriver],
                   options: NetworkOptions, durable: bool,
                   ipam_drivers: Mapping[str, IpamDriver] | None = None) -> NetworkCatalog:
        """Load the records and make sure `bridge`, `host` and `none` exist."""
        for needed in ("bridge", "host", "null"):
            if needed not in drivers:
                raise SystemFailure(f"the {needed!r} network driver is not registered")
        store: RecordStore[NetworkRecord] = RecordStore(
            data_root / "state" / "networks", NetworkRecord, durable=durable)
        loaded = await trio.to_thread.run_sync(store.load_all)
        catalog = cls(options, drivers, store, {r.id: r for r in loaded.values()},
                      host_id=await trio.to_thread.run_sync(machine_id),
                      ipam_drivers=ipam_drivers if ipam_drivers is not None else {})
        await catalog._ensure_predefined()
        for record in catalog.records.values():
            catalog.open_pool(record)
        return catalog

    # the pre-defined networks --------------------------------------------------------------
    async def _ensure_predefined(self) -> None:
        by_name = {r.name: r for r in self.records.values()}
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            record = by_name.get(name)
            if record is None:
                record = NetworkRecord(id=ids.new_id(), name=name, driver=driver, created=now())
                if name == "bridge":
                    await self._default_bridge_ipam(record)
                await self.store.save(record.id, record)
                self.records[record.id] = record
            elif name == "bridge":
                await self._default_bridge_ipam(record, existing=True)

    async def _default_bridge_ipam(self, record: NetworkRecord, *, existing: bool = False) -> None:
        wanted = self.options.default_bridge_subnet
        options = dict(BRIDGE_OPTIONS_DEFAULT)
        options["com.docker.network.bridge.name"] = self.options.default_bridge
        options["com.docker.network.driver.mtu"] = str(self.options.default_bridge_mtu)
        changed = record.options != options
        record.options = options
        v4 = record.pool
        if wanted:
            v4 = _same_or(v4, wanted)
        elif v4 is None:
            taken = await self._taken_subnets(exclude=record.id)
            v4 = ipam.validate_config(IPAMConfig(), subnet=ipam.pick_subnet(taken, skip_default=False))
        v6 = record.pool6 if self.options.default_bridge_ipv6 else None
        if self.options.default_bridge_subnet6:
            v6 = _same_or(v6, self.options.default_bridge_subnet6)
        elif self.options.default_bridge_ipv6 and v6 is None:
            v6 = await self.choose_ipam6([], exclude=record.id)
        configs = [c for c in (v4, v6) if c is not None]
        if configs != record.ipam or record.enable_ipv6 != (v6 is not None):
            record.ipam = configs
            record.enable_ipv6 = v6 is not None
            changed = True
        if existing and changed:
            await self.store.save(record.id, record)

    # subnets -------------------------------------------------------------------------------
    async def _taken_subnets(self, *, exclude: str = "") -> list[ipam.IPNetwork]:
        """Subnets a new network must avoid: the host's routes and addresses (those on our
        own bridges aside) and our other networks' subnets, of both families."""
        host = await netlink.netlink(netlink.host_networks)
        ours = {self.bridge_name(r) for r in self.records.values() if r.driver == "bridge"}
        taken = [r for r, dev in zip(host.routes, host.route_devices, strict=False) if dev not in ours]
        taken += [a.network for a in host.addresses if not a.ip.is_loopback]
        return taken + self._our_subnets(exclude=exclude)

    def _our_subnets(self, *, exclude: str = "") -> list[ipam.IPNetwork]:
        return [ipaddress.ip_network(c.subnet) for r in self.reserved() if r.id != exclude
                for c in r.ipam if c.subnet]

    def reserved(self) -> list[NetworkRecord]:
        """Every network whose name and subnets are taken: those in use and those whose
        driver is still making them."""
        return [*self.records.values(), *self.creating.values()]

    def _checked(self, config: IPAMConfig, *, exclude: str = "") -> IPAMConfig:
        """A user's subnet, checked and refused if another of our networks overlaps it."""
        checked = ipam.validate_config(config)
        subnet = ipaddress.ip_network(checked.subnet)
        if any(subnet.overlaps(t) for t in self._our_subnets(exclude=exclude)
               if t.version == subnet.version):
            raise ipam.overlap_error()
        return checked

    async def choose_ipam(self, configs: Sequence[IPAMConfig]) -> IPAMConfig:
        """A new network's IPv4 IPAM: the subnet asked for if no network has it, else a
        free one."""
        if configs and configs[0].subnet:
            return self._checked(configs[0])
        if configs:
            ipam.validate_config(configs[0])  # says what is missing
        subnet = ipam.pick_subnet(await self._taken_subnets())
        return ipam.validate_config(IPAMConfig(), subnet=subnet)

    async def choose_ipam6(self, configs: Sequence[IPAMConfig], *, exclude: str = "") -> IPAMConfig:
        """The same for IPv6: the subnet asked for, else a /64 of the daemon's unique local
        /48 (see `ipam.ula_base`)."""
        if configs:
            return self._checked(configs[0], exclude=exclude)
        base = ipam.ula_base(f"{self.host_id}/{self.options.prefix}")
        subnet = ipam.pick_subnet6(await self._taken_subnets(exclude=exclude), base=base)
        return ipam.validate_config(IPAMConfig(), subnet=subnet)

    def bridge_name(self, record: NetworkRecord) -> str:
        given = record.options.get("com.docker.network.bridge.name")
        if given:
            return given
        return f"{self.options.prefix}-{record.id[:14 - len(self.options.prefix)]}"

    def open_pool(self, record: NetworkRecord) -> None:
        driver = self.drivers.get(record.driver)
        if driver is None or not driver.uses_ipam:
            return
        if record.pool is not None:
            self.pools[record.id] = ipam.AddressPool.of(record.pool)
        else:
            self.pools.pop(record.id, None)
        if record.enable_ipv6 and record.pool6 is not None:
            self.pools6[record.id] = ipam.AddressPool.of(record.pool6)
        else:
            self.pools6.pop(record.id, None)

    def close_pools(self, network_id: str) -> None:
        """The network is gone: forget its address pools."""
        self.pools.pop(network_id, None)
        self.pools6.pop(network_id, None)

    def release_addresses(self, network_id: str, endpoint_id: str) -> None:
        """Give an endpoint's addresses on a network back (both families)."""
        for pools in (self.pools, self.pools6):
            pool = pools.get(network_id)
            if pool is not None:
                pool.release(endpoint_id)

    # lookups -------------------------------------------------------------------------------
    def driver(self, record: NetworkRecord) -> NetworkDriver:
        driver = self.drivers.get(record.driver)
        if driver is None:
            raise NotFound(f"plugin \"{record.driver}\" not found")
        return driver

    def get(self, ref: str) -> NetworkRecord:
        """A network by full ID, name, or unique ID prefix (Docker's order)."""
        if ref in self.records:
            return self.records[ref]
        for record in self.records.values():
            if record.name == ref:
                return record
        if ids.is_hex_prefix(ref):
            found = [r for r in self.records.values() if r.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(
                    f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    @property
    def default_bridge(self) -> NetworkRecord:
        return next(r for r in self.records.values() if r.name == "bridge")

    def network_config(self, record: NetworkRecord) -> NetworkConfig:
        pool = self.pools.get(record.id)
        pool6 = self.pools6.get(record.id)
        subnet = pool.subnet if pool else None
        gateway = pool.gateway if pool else None
        subnet6 = pool6.subnet if pool6 else None
        gateway6 = pool6.gateway if pool6 else None
        return NetworkConfig(
            id=record.id,
            name=record.name,
            subnet=subnet if isinstance(subnet, ipaddress.IPv4Network) else None,
            gateway=gateway if isinstance(gateway, ipaddress.IPv4Address) else None,
            internal=record.internal,
            options=dict(record.options),
            subnet6=subnet6 if isinstance(subnet6, ipaddress.IPv6Network) else None,
            gateway6=gateway6 if isinstance(gateway6, ipaddress.IPv6Address) else None,
        )


def _same_or(current: IPAMConfig | None, subnet: str) -> IPAMConfig:
    """The current entry if it already has `subnet` (its gateway and all), else a new one."""
    config = ipam.validate_config(IPAMConfig(subnet=subnet))
    return current if current is not None and current.subnet == config.subnet else config


def machine_id() -> str:
    """Blocking. The host's machine ID (what makes this host's unique local IPv6 prefix
    its own); the host name if there is none."""
    """The host's machine ID (what makes this host's unique local IPv6 prefix its own)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return socket.gethostname()


__all__ = ["BRIDGE_OPTIONS_DEFAULT", "NetworkCatalog", "driver_error", "now"]
