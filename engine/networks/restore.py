"""Daemon start: make the networks real again and settle every saved attachment.

A reboot removed the bridges; a moord that died left attachment records behind. Once
the container manager knows which containers still run, `restore_networking` re-creates
each network through its driver, re-adopts the attachments of running containers
(addresses, host ports, names, links and rules checked and re-made if missing), tears
down those of containers that are gone, and removes namespace files nothing accounts for.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

import trio

from engine.errors import EngineError
from engine.kernel import netlink, netns
from engine.networks.attachments import Attachments, driver_endpoint, join_endpoint
from engine.networks.catalog import NetworkCatalog, driver_error
from engine.networks.dns_servers import NetworkDNS
from engine.networks.model import AttachmentRecord, NetworkRecord
from plugins.network_contract import NetworkDriver

log = logging.getLogger(__name__)


async def restore_networking(catalog: NetworkCatalog, dns: NetworkDNS, attachments: Attachments,
                             running: Iterable[str]) -> None:
    """Bring networks and attachments back in line with what runs; then let starts in."""
    alive = set(running)
    by_driver: dict[str, list[NetworkRecord]] = {}
    for record in catalog.records.values():
        by_driver.setdefault(record.driver, []).append(record)
    async with trio.open_nursery() as nursery:  # a slow driver delays only its own networks
        for records in by_driver.values():
            nursery.start_soon(_remake_networks, catalog, dns, records)
    for cid, attached in list(attachments.records.items()):
        if cid in alive:
            try:
                await _readopt(catalog, dns, attachments, attached)
            except Exception:
                log.exception("re-adopting the network of %s failed", cid[:12])
        else:
            await attachments.teardown(attached)
    await netlink.netlink(_sweep_namespaces, attachments)
    async with trio.open_nursery() as nursery:
        for name, driver in catalog.drivers.items():
            nursery.start_soon(_ready, name, driver)
    attachments.restored.set()


async def _remake_networks(catalog: NetworkCatalog, dns: NetworkDNS,
                           records: list[NetworkRecord]) -> None:
    """One driver's networks, in order."""
    for record in records:
        try:
            await catalog.driver(record).create_network(catalog.network_config(record))
        except Exception as exc:
            log.error("network %s could not be set up: %s", record.name,
                      driver_error(exc, "setting up").message)
        await dns.start(record)


async def _ready(name: str, driver: NetworkDriver) -> None:
    try:
        await driver.ready()
    except Exception:
        log.exception("network driver %s failed to apply its state", name)


def _sweep_namespaces(attachments: Attachments) -> None:
    """Namespace files no attachment accounts for (moord died between removing a
    record and the file) go; their veths go with them."""
    directory = attachments.exec_root / "netns"
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.name not in attachments.records:
            try:
                netns.delete_netns(entry)
                log.info("removed the stray network namespace %s", entry)
            except OSError as exc:
                log.warning("removing the stray network namespace %s: %s", entry, exc)


async def _readopt(catalog: NetworkCatalog, dns: NetworkDNS, attachments: Attachments,
                   record: AttachmentRecord) -> None:
    cid = record.container_id
    for ep in record.endpoints:
        for pools, ip in ((catalog.pools, ep.ip), (catalog.pools6, ep.ip6)):
            pool = pools.get(ep.network_id)
            if pool is not None and ip:
                try:
                    pool.take(ipaddress.ip_address(ip), ep.endpoint_id)
                except EngineError as exc:
                    log.warning("%s: %s", cid[:12], exc.message)
    for port in record.ports:
        warning = attachments.ports.restore(cid, port.protocol, port.host_ip, port.host_port)
        if warning:
            log.warning("%s: %s", cid[:12], warning)
    if record.netns not in ("", "host") and not netns.is_netns(record.netns):
        log.warning("%s: its network namespace %s is gone", cid[:12], record.netns)
        return
    for ep in record.endpoints:
        network = catalog.records.get(ep.network_id)
        if network is None:
            continue
        driver = catalog.driver(network)
        config = catalog.network_config(network)
        endpoint = driver_endpoint(record, ep)
        try:
            await join_endpoint(driver, config, endpoint,
                                (p for p in record.ports if p.network_id == ep.network_id))
        except Exception as exc:
            log.error("%s: re-joining %s failed: %s", cid[:12], network.name,
                      driver_error(exc, "joining").message)
    attachments.forwarders.start(cid, record.ports, attachments.ports)
    dns.register(record)


__all__ = ["restore_networking"]
