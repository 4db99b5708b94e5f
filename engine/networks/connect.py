"""`network connect` and `network disconnect`.

Both change the container's record (through the container manager's
`ContainerDirectory`) and, for a running container that has a namespace of its own,
its live attachment too: an endpoint joined or left without a restart.
"""

from __future__ import annotations

import logging

import attrs
import trio

from engine.errors import Forbidden, InvalidParameter
from engine.networks import remote_ipam
from engine.networks.attachments import Attachments, driver_endpoint
from engine.networks.catalog import NetworkCatalog, driver_error
from engine.networks.model import (
    AttachmentRecord,
    ContainerDirectory,
    ContainerInfo,
    EndpointRequest,
    NetworkRecord,
)
from engine.networks.validation import check_endpoint_request

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Connections:
    catalog: NetworkCatalog
    attachments: Attachments

    async def connect(self, directory: ContainerDirectory, network_ref: str, container_ref: str,
                      request: EndpointRequest | None = None) -> None:
        """`POST /networks/{id}/connect`: live for a running container, in its record always."""
        catalog = self.catalog
        record = catalog.get(network_ref)
        request = request or EndpointRequest()
        info = directory.find(container_ref)
        driver = catalog.driver(record)
        networking = info.networking
        if networking.shared_with:
            raise InvalidParameter("container sharing network namespace with another container "
                                   "or host cannot be connected to any other network")
        current = list(networking.networks)
        current_drivers = [catalog.driver(catalog.records[n]) for n in current
                           if n in catalog.records]
        if driver.namespace == "host" or any(d.namespace == "host" for d in current_drivers):
            raise Forbidden("container cannot be disconnected from host network or connected to "
                            "host network")
        if driver.namespace != "private" or any(d.namespace != "private" for d in current_drivers):
            raise Forbidden("container cannot be connected to multiple networks with one of the "
                            "networks in private (none) mode")
        if record.id in current:
            raise Forbidden(f"endpoint with name {info.name} already exists in network {record.name}")
        check_endpoint_request(catalog, record, request)
        new_networks = dict(networking.networks)
        new_networks[record.id] = request
        updated = attrs.evolve(networking, networks=new_networks)
        async with self.attachments.lock(info.id):
            live = self.attachments.get(info.id)
            if live is not None and live.owned_netns:
                await self._join_live(info, live, record, request)
            await directory.save_networking(info.id, updated)

    async def _join_live(self, info: ContainerInfo, live: AttachmentRecord, network: NetworkRecord,
                         request: EndpointRequest) -> None:
        attachments = self.attachments
        driver = self.catalog.driver(network)
        config = self.catalog.network_config(network)
        used = {ep.ifname for ep in live.endpoints}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        request = await remote_ipam.lease_address(self.catalog.ipam_drivers, network, request)
        ep = attachments.allocate_endpoint(info, network, request, ifname, default_route=False)
        live.endpoints.append(ep)
        try:
            await attachments.store.save(info.id, live)
            await driver.join(config, driver_endpoint(live, ep))
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                live.endpoints.remove(ep)
                try:
                    await driver.leave(config, driver_endpoint(live, ep))
                except Exception:
                    log.exception("undoing a failed connect")
                await remote_ipam.release_addresses(self.catalog.ipam_drivers, self.catalog.records,
                                                    [ep])
                self.catalog.release_addresses(network.id, ep.endpoint_id)
                await attachments.store.save(info.id, live)
            if isinstance(exc, Exception):
                raise driver_error(exc, f"connecting to {network.name}") from None
            raise
        attachments.dns.register(live)

    async def disconnect(self, directory: ContainerDirectory, network_ref: str, container_ref: str,
                         *, force: bool = False) -> None:
        """`POST /networks/{id}/disconnect`."""
        record = self.catalog.get(network_ref)
        info = directory.find(container_ref)
        networking = info.networking
        if record.id not in networking.networks:
            raise Forbidden(f"container {info.id} is not connected to network {record.name}")
        if self.catalog.driver(record).namespace == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to "
                            "host network")
        # the last network may go too: the container then has none (only `lo`), as in Docker
        new_networks = {k: v for k, v in networking.networks.items() if k != record.id}
        updated = attrs.evolve(networking, networks=new_networks)
        async with self.attachments.lock(info.id):
            live = self.attachments.get(info.id)
            if live is not None:
                await self._leave_live(live, record)
            await directory.save_networking(info.id, updated)

    async def _leave_live(self, live: AttachmentRecord, network: NetworkRecord) -> None:
        found = [ep for ep in live.endpoints if ep.network_id == network.id]
        if not found:
            return
        ep = found[0]
        driver = self.catalog.driver(network)
        config = self.catalog.network_config(network)
        endpoint = driver_endpoint(live, ep)
        try:
            await driver.unpublish(config, endpoint)
            await driver.leave(config, endpoint)
        except Exception as exc:
            raise driver_error(exc, f"disconnecting from {network.name}") from None
        live.endpoints.remove(ep)
        ports = self.attachments.ports
        gone = [p for p in live.ports if p.network_id == network.id]
        if gone:
            live.ports = [p for p in live.ports if p.network_id != network.id]
            self.attachments.forwarders.stop(live.container_id)
            ports.release(live.container_id)
            for p in live.ports:
                ports.restore(live.container_id, p.protocol, p.host_ip, p.host_port)
            self.attachments.forwarders.start(live.container_id, live.ports, ports)
        await remote_ipam.release_addresses(self.catalog.ipam_drivers, self.catalog.records, [ep])
        self.catalog.release_addresses(network.id, ep.endpoint_id)
        await self.attachments.store.save(live.container_id, live)
        self.attachments.dns.register(live)


__all__ = ["Connections"]
