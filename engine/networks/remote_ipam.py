"""Networks whose addresses come from an IPAM driver (`--ipam-driver NAME`,
`plugins.ipam_contract`) instead of moord's own IPAM.

The driver chooses; moord keeps its bookkeeping: the granted subnet and gateway become
the network's IPAM entry (so its address pool, inspect and restarts work as for any
network), and each address the driver gives an endpoint is taken in that pool as if
the container had asked for it. What the driver must hear back (the pool's ID, whether
the gateway was leased) is kept in the record's `ipam_lease`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import attrs

from engine.errors import InvalidParameter, SystemFailure
from engine.networks.model import EndpointRequest, EndpointState, IPAMConfig, NetworkRecord
from plugins.ipam_contract import IpamDriver, IpamDriverError

log = logging.getLogger(__name__)

DEFAULT = ("", "default")


def ipam_driver(drivers: Mapping[str, IpamDriver], name: str) -> IpamDriver:
    driver = drivers.get(name)
    if driver is None:
        raise InvalidParameter(f'IPAM driver "{name}" is not supported by moorage')
    return driver


def _failure(exc: IpamDriverError, what: str) -> SystemFailure:
    return SystemFailure(f"{what}: {exc}")


async def lease_pool(driver: IpamDriver, record: NetworkRecord, configs: Sequence[IPAMConfig],
                     options: Mapping[str, str]) -> IPAMConfig:
    """The network's IPAM entry from the driver (Docker's order: the pool, then the
    gateway: the one asked for, else the pool's suggestion, else one the driver picks)."""
    asked = configs[0] if configs else IPAMConfig()
    try:
        grant = await driver.request_pool(asked.subnet, asked.ip_range, options, False)
        record.ipam_lease = {"pool_id": grant.pool_id}
        if asked.gateway or not grant.gateway:
            gateway = await driver.request_address(grant.pool_id, asked.gateway, gateway=True)
            record.ipam_lease["gateway"] = gateway
        else:
            gateway = grant.gateway
    except IpamDriverError as exc:
        await release_pool(driver, record)
        raise _failure(exc, f"creating network {record.name}") from None
    record.ipam_driver = driver.name
    return IPAMConfig(subnet=grant.subnet, gateway=gateway.split("/", 1)[0], ip_range=asked.ip_range)


async def release_pool(driver: IpamDriver, record: NetworkRecord) -> None:
    """Give the gateway and the pool back (failures are logged: the network goes anyway)."""
    lease = record.ipam_lease
    try:
        if lease.get("gateway"):
            await driver.release_address(lease["pool_id"], lease["gateway"].split("/", 1)[0])
        if lease.get("pool_id"):
            await driver.release_pool(lease["pool_id"])
    except IpamDriverError as exc:
        log.warning("network %s: %s", record.name, exc)


async def lease_address(drivers: Mapping[str, IpamDriver], network: NetworkRecord,
                        request: EndpointRequest) -> EndpointRequest:
    """The request with the address the network's IPAM driver gives (unchanged for a
    network on moord's own IPAM)."""
    if not network.ipam_lease:
        return request
    driver = ipam_driver(drivers, network.ipam_driver)
    try:
        given = await driver.request_address(network.ipam_lease["pool_id"], request.ipv4_address)
    except IpamDriverError as exc:
        raise _failure(exc, f"an address on {network.name}") from None
    return attrs.evolve(request, ipv4_address=given.split("/", 1)[0])


async def release_addresses(drivers: Mapping[str, IpamDriver], records: Mapping[str, NetworkRecord],
                            endpoints: Iterable[EndpointState]) -> None:
    """Give the endpoints' driver-leased addresses back; never raises (logged)."""
    for ep in endpoints:
        network = records.get(ep.network_id)
        if network is None or not network.ipam_lease or not ep.ip:
            continue
        try:
            driver = ipam_driver(drivers, network.ipam_driver)
            await driver.release_address(network.ipam_lease["pool_id"], ep.ip)
        except (IpamDriverError, InvalidParameter) as exc:
            log.warning("network %s: releasing %s: %s", network.name, ep.ip, exc)
