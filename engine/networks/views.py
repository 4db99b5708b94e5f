"""What inspect and ps show of networks and endpoints beyond the records themselves.

The wire layer (engine.api.wire.networks) renders Docker's JSON from the records; these
are the few values it needs the drivers or the attachments for. A driver that fails to
describe itself costs its extra options, never the whole inspect.
"""

from __future__ import annotations

import hashlib

from engine.networks.attachments import Attachments, driver_endpoint
from engine.networks.catalog import NetworkCatalog
from engine.networks.model import AttachmentRecord, ContainerNetworking, EndpointState, NetworkRecord


def sandbox_id(attachments: Attachments, container_id: str) -> str:
    record = attachments.get(container_id)
    if record is None:
        return ""
    return hashlib.sha256(f"{container_id}/{record.created.isoformat()}".encode()).hexdigest()


def container_networks(catalog: NetworkCatalog, networking: ContainerNetworking) -> list[NetworkRecord]:
    """The networks a container is configured on, in order (deleted ones left out)."""
    return [catalog.records[n] for n in networking.networks if n in catalog.records]


def endpoint_driver_options(catalog: NetworkCatalog, record: NetworkRecord,
                            attachment: AttachmentRecord, ep: EndpointState) -> dict[str, str]:
    driver = catalog.drivers.get(record.driver)
    if driver is None:
        return {}
    try:
        return dict(driver.endpoint_options(catalog.network_config(record),
                                            driver_endpoint(attachment, ep)))
    except Exception:
        return {}


def network_options(catalog: NetworkCatalog, record: NetworkRecord) -> dict[str, str]:
    driver = catalog.drivers.get(record.driver)
    shown = {k: v for k, v in record.options.items() if not k.startswith("moorage.")}
    if driver is None:
        return shown
    try:
        return {k: v for k, v in driver.network_options(catalog.network_config(record)).items()
                if not k.startswith("moorage.")}
    except Exception:
        return shown


__all__ = ["container_networks", "endpoint_driver_options", "network_options", "sandbox_id"]
