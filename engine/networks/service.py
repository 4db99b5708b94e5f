"""`NetworkService`: networks, container attachments, addresses, ports and names.

One per daemon. It keeps the network records, runs the drivers, makes each container's
network namespace, hands out addresses and host ports, serves DNS, and writes what a
container needs in /etc. The container manager calls it at four moments:

    networking = service.validate_container_networking(...)   # create: store in the record
    attachment = await service.attach(info)                   # start, before the runtime
    await service.detach(container_id)                        # exit and removal (idempotent)
    await service.restore(running_ids)                        # daemon start, once

and the network API (`engine.api.handlers.networks`) calls the rest. The service is a
thin front over its parts, one concern each:

- `catalog.NetworkCatalog`: network records, address pools, drivers, subnet choice;
- `dns_servers.NetworkDNS`: each network's DNS server and the names it answers;
- `attachments.Attachments`: what running containers hold (attach, detach, teardown);
- `restore.restore_networking`: the start-up reconciliation after a restart or crash;
- `lifecycle.NetworkLifecycle`: network create, remove and prune;
- `connect.Connections`: network connect and disconnect;
- `validation`, `listing`, `views`: create-time checks, `GET /networks` filters, and
  what inspect needs from the drivers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path

import attrs
import trio

from engine.errors import SystemFailure
from engine.metrics.catalog import METRICS
from engine.networks import listing, validation, views
from engine.networks.attachments import Attachments
from engine.networks.catalog import NetworkCatalog
from engine.networks.connect import Connections
from engine.networks.dns_servers import NetworkDNS
from engine.networks.lifecycle import NetworkLifecycle
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
)
from engine.networks.options import NetworkOptions
from engine.networks.ports import PortAllocator
from engine.networks.restore import restore_networking
from plugins.ipam_contract import IpamDriver
from plugins.manager import drivers_by_name
from plugins.network_contract import DriverContext, NetworkDriver

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class NetworkService:
    options: NetworkOptions
    data_root: Path
    exec_root: Path
    catalog: NetworkCatalog
    dns: NetworkDNS
    attachments: Attachments
    lifecycle: NetworkLifecycle
    connections: Connections
    containers: ContainerDirectory | None = None

    # opening and running ---------------------------------------------------------------------
    @classmethod
    async def open(cls, *, data_root: Path, exec_root: Path, drivers: MutableMapping[str, NetworkDriver],
                   options: NetworkOptions | None = None, durable: bool = True,
                   ipam_drivers: Mapping[str, IpamDriver] | None = None) -> NetworkService:
        """Load the records and make sure `bridge`, `host` and `none` exist.

        `drivers` by name (see `drivers_from_plugins`); needs at least `bridge`, `host`
        and `null`. Call `run` next (in the daemon's nursery), then `restore`.
        """
        options = options or NetworkOptions()
        catalog = await NetworkCatalog.open(data_root=data_root, drivers=drivers, options=options,
                                            durable=durable, ipam_drivers=ipam_drivers)
        dns = NetworkDNS(catalog)
        attachments = await Attachments.open(
            exec_root=exec_root, catalog=catalog, dns=dns,
            ports=PortAllocator(ephemeral=options.ephemeral_ports))
        return cls(options, data_root, exec_root, catalog, dns, attachments,
                   NetworkLifecycle(catalog, dns, attachments), Connections(catalog, attachments))

    def bind_containers(self, containers: ContainerDirectory) -> None:
        """Give the service the container manager's view (connect, disconnect, inspect)."""
        self.containers = containers

    def _directory(self) -> ContainerDirectory:
        if self.containers is None:
            raise SystemFailure("the network service is not bound to the container manager")
        return self.containers

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the DNS servers' nursery; set the drivers up. Start with `nursery.start`."""
        async with trio.open_nursery() as nursery:
            self.dns.nursery = nursery
            self.attachments.forwarders.nursery = nursery
            async with trio.open_nursery() as setups:  # a slow driver delays no other
                for name, driver in self.catalog.drivers.items():
                    setups.start_soon(self._setup_driver, name, driver)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.ports.close()

    async def _setup_driver(self, name: str, driver: NetworkDriver) -> None:
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

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self.dns.nursery is not None
        self.dns.nursery.start_soon(fn)

    async def restore(self, running: Iterable[str]) -> None:
        """Daemon start: make every network real again (a reboot removed the bridges),
        re-adopt the attachments of containers still running (addresses, host ports,
        names, links and rules checked and re-made if missing) and tear down those of
        containers that are not. Call once, after `run` has started and after the
        container manager knows which containers run — and before it starts any."""
        await restore_networking(self.catalog, self.dns, self.attachments, running)

    @property
    def _restored(self) -> trio.Event:
        """Set once `restore` has run; `attach` waits for it."""
        return self.attachments.restored

    @property
    def ports(self) -> PortAllocator:
        """The host ports bound for published container ports."""
        return self.attachments.ports

    # the container's side -----------------------------------------------------------------------
    def validate_container_networking(
        self, *, network_mode: str, endpoints: Mapping[str, EndpointRequest] | None = None,
        port_bindings: Mapping[str, Sequence[tuple[str, str]]] | None = None,
        publish_all: bool = False, exposed_ports: Iterable[str] = (),
        dns: Sequence[str] = (), dns_search: Sequence[str] = (), dns_options: Sequence[str] = (),
        extra_hosts: Sequence[str] = (), mac_address: str = "",
    ) -> tuple[ContainerNetworking, list[str]]:
        """Check a create request's networking; see
        `engine.networks.validation.validate_container_networking`."""
        return validation.validate_container_networking(
            self.catalog, network_mode=network_mode, endpoints=endpoints,
            port_bindings=port_bindings, publish_all=publish_all, exposed_ports=exposed_ports,
            dns=dns, dns_search=dns_search, dns_options=dns_options, extra_hosts=extra_hosts,
            mac_address=mac_address)

    async def attach(self, info: ContainerInfo) -> Attachment:
        """Network a container that is about to start (see `Attachments.attach`)."""
        with METRICS.network_actions.time(action="allocate"):
            return await self.attachments.attach(info)

    async def detach(self, container_id: str) -> None:
        """The container stopped or is being removed; idempotent, never raises."""
        await self.attachments.detach(container_id)

    async def rename(self, container_id: str, new_name: str) -> None:
        """A running container was renamed: its DNS names follow."""
        await self.attachments.rename(container_id, new_name)

    async def refresh_links(self, info: ContainerInfo) -> str | None:
        """A running container's legacy links changed (see `Attachments.refresh_links`):
        its DNS aliases follow; returns its new /etc/hosts text (None: no file of its own)."""
        return await self.attachments.refresh_links(info)

    # lookups ------------------------------------------------------------------------------------
    def get(self, ref: str) -> NetworkRecord:
        """A network by full ID, name, or unique ID prefix (Docker's order)."""
        return self.catalog.get(ref)

    def endpoints_on(self, network_id: str) -> list[tuple[AttachmentRecord, EndpointState]]:
        """The live endpoints of a network (running containers)."""
        return self.attachments.endpoints_on(network_id)

    def attachment(self, container_id: str) -> AttachmentRecord | None:
        return self.attachments.get(container_id)

    def netns_path(self, container_id: str) -> Path:
        return self.attachments.netns_path(container_id)

    # network API --------------------------------------------------------------------------------
    async def create_network(self, *, name: str, driver: str = "bridge",
                             ipam_configs: Sequence[IPAMConfig] = (), ipam_driver: str = "",
                             ipam_options: Mapping[str, str] | None = None, internal: bool = False,
                             attachable: bool = False, labels: Mapping[str, str] | None = None,
                             options: Mapping[str, str] | None = None, enable_ipv6: bool = False,
                             enable_ipv4: bool = True, ingress: bool = False,
                             config_only: bool = False, config_from: str = "",
                             scope: str = "") -> NetworkRecord:
        """`POST /networks/create`, with Docker's refusals."""
        with METRICS.network_actions.time(action="create"):
            return await self.lifecycle.create_network(
                name=name, driver=driver, ipam_configs=ipam_configs, ipam_driver=ipam_driver,
                ipam_options=ipam_options, internal=internal, attachable=attachable,
                labels=labels, options=options, enable_ipv6=enable_ipv6, enable_ipv4=enable_ipv4,
                ingress=ingress, config_only=config_only, config_from=config_from, scope=scope)

    async def delete_network(self, ref: str) -> None:
        """`DELETE /networks/{id}`."""
        with METRICS.network_actions.time(action="delete"):
            await self.lifecycle.delete_network(ref)

    async def prune(self, *, until: dt.datetime | None = None,
                    labels: Sequence[str] = (), not_labels: Sequence[str] = ()) -> list[str]:
        """`POST /networks/prune`: every user network without active endpoints; names."""
        return await self.lifecycle.prune(until=until, labels=labels, not_labels=not_labels)

    def list_networks(self, filters: Mapping[str, Sequence[str]] | None = None) -> list[NetworkRecord]:
        """`GET /networks`, with Docker's filters (see `engine.networks.listing`)."""
        return listing.list_networks(self.catalog, self.attachments, filters)

    async def connect(self, network_ref: str, container_ref: str,
                      request: EndpointRequest | None = None) -> None:
        """`POST /networks/{id}/connect`: live for a running container, in its record always."""
        with METRICS.network_actions.time(action="connect"):
            await self.connections.connect(self._directory(), network_ref, container_ref, request)

    async def disconnect(self, network_ref: str, container_ref: str, *, force: bool = False) -> None:
        """`POST /networks/{id}/disconnect`."""
        with METRICS.network_actions.time(action="disconnect"):
            await self.connections.disconnect(self._directory(), network_ref, container_ref,
                                              force=force)

    # views for inspect / ps ---------------------------------------------------------------------
    def sandbox_id(self, container_id: str) -> str:
        return views.sandbox_id(self.attachments, container_id)

    def container_networks(self, networking: ContainerNetworking) -> list[NetworkRecord]:
        """The networks a container is configured on, in order (deleted ones left out)."""
        return views.container_networks(self.catalog, networking)

    def endpoint_driver_options(self, record: NetworkRecord, attachment: AttachmentRecord,
                                ep: EndpointState) -> dict[str, str]:
        return views.endpoint_driver_options(self.catalog, record, attachment, ep)

    def network_options(self, record: NetworkRecord) -> dict[str, str]:
        return views.network_options(self.catalog, record)


def drivers_from_plugins(results: Iterable[Sequence[NetworkDriver]]) -> dict[str, NetworkDriver]:
    """Every plugin's network drivers by name from `pm.hook.moorage_network_drivers()`;
    a later plugin's replaces an earlier one's (the one merge every driver kind uses)."""
    return drivers_by_name("network", results)


__all__ = ["NetworkOptions", "NetworkService", "drivers_from_plugins"]
