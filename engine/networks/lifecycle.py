"""Creating, removing and pruning networks (`network create`, `rm`, `prune`).

Each change holds the catalog's lock, saves the record before the driver makes the
network (and deletes it after the driver removed it; the making itself runs outside the
lock, the network reserved in `catalog.creating` meanwhile), and starts or stops the network's
DNS server with it. Docker's refusals and words are kept.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

import attrs
import trio

from engine import ids
from engine.errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound
from engine.filtering import labels_match
from engine.networks import remote_ipam
from engine.networks.attachments import Attachments
from engine.networks.catalog import NetworkCatalog, driver_error, now
from engine.networks.dns_servers import NetworkDNS
from engine.networks.model import IPAMConfig, NetworkRecord, is_v6
from plugins.network_contract import InvalidNetworkOption

log = logging.getLogger(__name__)

def check_network_name(name: str) -> None:
    """dockerd's rule: any name that is not blank. Spaces, slashes, any length: dockerd
    accepts them (it once allowed only `[a-zA-Z0-9][a-zA-Z0-9_.-]`, and reverted that in
    2017), and nothing in moorage keeps a network's name in a file or interface name."""
    if not name.strip():
        raise InvalidParameter("invalid name: name is empty")


@attrs.define(eq=False)
class NetworkLifecycle:
    catalog: NetworkCatalog
    dns: NetworkDNS
    attachments: Attachments

    async def create_network(self, *, name: str, driver: str = "bridge",
                             ipam_configs: Sequence[IPAMConfig] = (), ipam_driver: str = "",
                             ipam_options: Mapping[str, str] | None = None, internal: bool = False,
                             attachable: bool = False, labels: Mapping[str, str] | None = None,
                             options: Mapping[str, str] | None = None, enable_ipv6: bool = False,
                             enable_ipv4: bool = True, ingress: bool = False,
                             config_only: bool = False, config_from: str = "",
                             scope: str = "") -> NetworkRecord:
        """`POST /networks/create`, with Docker's refusals."""
        check_network_name(name)
        driver = driver or "bridge"
        if driver == "none":
            driver = "null"
        plugin = self.catalog.drivers.get(driver)
        if plugin is None:
            raise NotFound(f"plugin \"{driver}\" not found")
        if plugin.singleton:
            raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
        if not enable_ipv4:
            raise InvalidParameter("a network without IPv4 is not supported by moorage")
        if ingress or config_only or config_from:
            raise InvalidParameter("swarm networks (ingress, config-only, config-from) are not "
                                   "supported by moorage")
        if scope not in ("", "local"):
            raise InvalidParameter(f"scope {scope!r} is not supported: moorage networks are local")
        ipam_plugin = None
        if ipam_driver not in remote_ipam.DEFAULT:
            ipam_plugin = remote_ipam.ipam_driver(self.catalog.ipam_drivers, ipam_driver)
            if enable_ipv6:
                raise InvalidParameter("moorage takes IPv6 subnets from its own IPAM only: "
                                       "leave --ipam-driver out for an IPv6 network")
        configs = [c for c in ipam_configs if not is_v6(c.subnet)]
        # as dockerd, an IPv6 entry of a network without IPv6 is ignored
        configs6 = [c for c in ipam_configs if is_v6(c.subnet)] if enable_ipv6 else []
        if len(configs) > 1:
            raise InvalidParameter("moorage supports one IPv4 subnet per network")
        if len(configs6) > 1:
            raise InvalidParameter("moorage supports one IPv6 subnet per network")
        try:
            checked_options = plugin.validate_options(dict(options or {}))
        except InvalidNetworkOption as exc:
            raise InvalidParameter(str(exc)) from None
        catalog = self.catalog
        async with catalog.lock:
            if any(r.name == name for r in catalog.reserved()):
                raise Conflict(f"network with name {name} already exists")
            record = NetworkRecord(
                id=ids.new_id(), name=name, driver=driver, created=now(), internal=internal,
                attachable=attachable, labels=dict(labels or {}), options=checked_options,
                ipam_options=dict(ipam_options) if ipam_options is not None else None,
                enable_ipv6=enable_ipv6,
            )
            bridge_name = checked_options.get("com.docker.network.bridge.name")
            if bridge_name and any(catalog.bridge_name(r) == bridge_name
                                   for r in catalog.reserved() if r.driver == "bridge"):
                raise Conflict(f"bridge name {bridge_name} is already used by another network")
            if plugin.uses_ipam and ipam_plugin is not None:
                record.ipam = [await remote_ipam.lease_pool(ipam_plugin, record, configs,
                                                            ipam_options or {})]
                record.subnet_given = True  # the driver's subnet: `--ip` within it is its call
            elif plugin.uses_ipam:
                record.ipam = [await catalog.choose_ipam(configs)]
                record.subnet_given = bool(configs and configs[0].subnet)
                if enable_ipv6:
                    record.ipam.append(await catalog.choose_ipam6(configs6))
                    record.subnet6_given = bool(configs6)
            elif configs or configs6:
                raise InvalidParameter(f"the {driver} driver does not take IPAM configuration")
            elif enable_ipv6:
                raise InvalidParameter(f"the {driver} driver does not support IPv6")
            await catalog.store.save(record.id, record)
            catalog.creating[record.id] = record
            catalog.open_pool(record)
        # the driver works without the lock: a slow driver delays no other network change
        try:
            await plugin.create_network(catalog.network_config(record))
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                catalog.creating.pop(record.id, None)
                catalog.close_pools(record.id)
                try:
                    await plugin.delete_network(catalog.network_config(record))
                except Exception:
                    log.exception("cleaning up after a failed network create")
                if ipam_plugin is not None:
                    await remote_ipam.release_pool(ipam_plugin, record)
                await catalog.store.delete(record.id)
            if isinstance(exc, Exception):
                raise driver_error(exc, f"creating network {name}") from None
            raise
        catalog.creating.pop(record.id, None)
        catalog.records[record.id] = record
        await self.dns.start(record)
        return record

    async def delete_network(self, ref: str) -> None:
        """`DELETE /networks/{id}`."""
        async with self.catalog.lock:
            record = self.catalog.get(ref)
            if record.predefined:
                raise Forbidden(f"{record.name} is a pre-defined network and cannot be removed")
            if self.attachments.endpoints_on(record.id):
                raise Conflict(f"error while removing network: network {record.name} id "
                               f"{record.id} has active endpoints")
            await self._delete(record)

    async def _delete(self, record: NetworkRecord) -> None:
        self.dns.stop(record.id)
        try:
            await self.catalog.driver(record).delete_network(self.catalog.network_config(record))
        except Exception as exc:
            raise driver_error(exc, f"removing network {record.name}") from None
        if record.ipam_lease:
            await remote_ipam.release_pool(
                remote_ipam.ipam_driver(self.catalog.ipam_drivers, record.ipam_driver), record)
        await self.catalog.store.delete(record.id)
        self.catalog.records.pop(record.id, None)
        self.catalog.close_pools(record.id)

    async def prune(self, *, until: dt.datetime | None = None,
                    labels: Sequence[str] = (), not_labels: Sequence[str] = ()) -> list[str]:
        """`POST /networks/prune`: every user network without active endpoints; names."""
        deleted: list[str] = []
        async with self.catalog.lock:
            for record in sorted(self.catalog.records.values(), key=lambda r: r.created):
                if record.predefined or self.attachments.endpoints_on(record.id):
                    continue
                if until is not None and record.created >= until:
                    continue
                if not labels_match(record.labels, {"label": labels, "label!": not_labels}):
                    continue
                try:
                    await self._delete(record)
                except EngineError as exc:
                    log.warning("pruning network %s: %s", record.name, exc.message)
                    continue
                deleted.append(record.name)
        return deleted


__all__ = ["NetworkLifecycle"]
