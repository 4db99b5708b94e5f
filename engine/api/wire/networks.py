"""Docker's JSON for networks and for the network parts of containers.

Reading: `POST /networks/create` bodies, `EndpointSettings` (the container create's
`NetworkingConfig.EndpointsConfig` values and `POST /networks/{id}/connect`).
Writing: `Network` objects (list and inspect), and for containers `NetworkSettings`
(inspect), `Ports` and `NetworkSettings.Networks` (`docker ps`) — the container side
renders these through the functions here, passing the `NetworkService`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from engine.api.wire import fields
from engine.errors import InvalidParameter
from engine.images.ociconfig import format_time as rfc3339
from engine.networks.linkspec import is_user_defined
from engine.networks.model import (
    AttachmentRecord,
    ContainerNetworking,
    EndpointRequest,
    EndpointState,
    IPAMConfig,
    NetworkRecord,
)
from engine.networks.ports import parse_port_key

if TYPE_CHECKING:
    from engine.networks.service import NetworkService


# reading ----------------------------------------------------------------------------------


def parse_create(body: Mapping[str, Any]) -> dict[str, Any]:
    """A `POST /networks/create` body as keyword arguments of `NetworkService.create_network`."""
    ipam = fields.json_object(body, "IPAM")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InvalidParameter("invalid type for IPAM.Config: expected a list of objects")
    w = "IPAM.Config."
    enable_ipv4 = body.get("EnableIPv4")
    if enable_ipv4 is not None and not isinstance(enable_ipv4, bool):
        raise InvalidParameter("invalid type for EnableIPv4: expected a boolean")
    config_from = fields.json_object(body, "ConfigFrom")
    return {
        "name": fields.string(body, "Name"),
        "driver": fields.string(body, "Driver") or "bridge",
        "scope": fields.string(body, "Scope"),
        "internal": fields.boolean(body, "Internal"),
        "attachable": fields.boolean(body, "Attachable"),
        "ingress": fields.boolean(body, "Ingress"),
        "config_only": fields.boolean(body, "ConfigOnly"),
        "config_from": fields.string(config_from, "Network", "ConfigFrom."),
        "enable_ipv4": True if enable_ipv4 is None else enable_ipv4,
        "enable_ipv6": fields.boolean(body, "EnableIPv6"),
        "options": fields.string_map(body, "Options"),
        "labels": fields.string_map(body, "Labels"),
        "ipam_driver": fields.string(ipam, "Driver", "IPAM."),
        # kept as sent: dockerd shows a missing (or null) IPAM.Options as null, {} as {}
        "ipam_options": (fields.string_map(ipam, "Options", "IPAM.")
                         if ipam.get("Options") is not None else None),
        "ipam_configs": [
            IPAMConfig(subnet=fields.string(c, "Subnet", w), gateway=fields.string(c, "Gateway", w),
                       ip_range=fields.string(c, "IPRange", w),
                       aux_addresses=fields.string_map(c, "AuxiliaryAddresses", w))
            for c in configs
        ],
    }


def parse_endpoint_request(settings: Mapping[str, Any] | None) -> EndpointRequest:
    """One `EndpointSettings` object as sent by a client (IPAMConfig, Aliases, MacAddress,
    Links, DriverOpts); the rest of it is output only."""
    if not settings:
        return EndpointRequest()
    w = "EndpointSettings."
    ipam = fields.json_object(settings, "IPAMConfig", w)
    return EndpointRequest(
        aliases=tuple(fields.string_list(settings, "Aliases", w)),
        ipv4_address=fields.string(ipam, "IPv4Address", w + "IPAMConfig."),
        ipv6_address=fields.string(ipam, "IPv6Address", w + "IPAMConfig."),
        link_local_ips=tuple(fields.string_list(ipam, "LinkLocalIPs", w + "IPAMConfig.")),
        mac_address=fields.string(settings, "MacAddress", w),
        links=tuple(fields.string_list(settings, "Links", w)),
        driver_opts=fields.string_map(settings, "DriverOpts", w),
    )


def parse_endpoints_config(networking_config: Mapping[str, Any] | None) -> dict[str, EndpointRequest]:
    """`NetworkingConfig` of a container create body: {network name or ID: request}."""
    if not networking_config:
        return {}
    endpoints = fields.json_object(networking_config, "EndpointsConfig", "NetworkingConfig.")
    result: dict[str, EndpointRequest] = {}
    for key, settings in endpoints.items():
        if settings is not None and not isinstance(settings, dict):
            raise InvalidParameter("invalid type for NetworkingConfig.EndpointsConfig: expected "
                                   "objects")
        result[key] = parse_endpoint_request(settings)
    return result


MAC_DEPRECATED = ("The container-wide MacAddress field is now deprecated. It should be "
                  "specified in EndpointsConfig instead.")


def _before(api_version: str, version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    return parts(api_version) < parts(version)


def _main_endpoint_key(mode: str, endpoints: Mapping[str, EndpointRequest], old_api: bool) -> str:
    """Which of `EndpointsConfig`'s keys is the container's main network (`NetworkMode`)."""
    names = ("default", "bridge") if mode in ("default", "bridge") else (mode,)
    if not endpoints:
        return names[0]
    if old_api:  # one endpoint at most before API 1.44
        return next(iter(endpoints))
    for key in names:
        if key in endpoints:
            return key
    raise InvalidParameter("unable to migrate container-wide MAC address to a specific network: "
                           "HostConfig.NetworkMode must match the identity of a network in "
                           "NetworkSettings.Networks")


def migrate_container_mac(mac: str, network_mode: str, endpoints: dict[str, EndpointRequest],
                          api_version: str) -> str:
    """Docker's handling of the container-wide `Config.MacAddress` (deprecated since API
    1.44): it becomes the MAC of the main network's endpoint in `endpoints` (changed in
    place). Returns the create response's warning ("" for none). Before API 1.44 the
    endpoints' own MACs are ignored and a mode without a network of its own is refused;
    since then the container-wide one must agree with the endpoint's."""
    old_api = _before(api_version, "1.44")
    if old_api:
        for key, request in endpoints.items():
            endpoints[key] = attrs.evolve(request, mac_address="")
    if not mac:
        return ""
    mode = network_mode or "default"
    if mode not in ("default", "bridge") and not is_user_defined(mode):
        if old_api:
            raise InvalidParameter("conflicting options: mac-address and the network mode")
        return MAC_DEPRECATED
    key = _main_endpoint_key(mode, endpoints, old_api)
    current = endpoints.get(key, EndpointRequest())
    if not old_api and current.mac_address and current.mac_address != mac:
        raise InvalidParameter("the container-wide MAC address must match the endpoint-specific "
                               "MAC address for the main network, or be left empty")
    endpoints[key] = attrs.evolve(current, mac_address=mac)
    return "" if old_api else MAC_DEPRECATED


def port_bindings_pairs(bindings: Mapping[str, Iterable[Any]]) -> dict[str, list[tuple[str, str]]]:
    """`HostConfig.PortBindings` in any record form ({"80/tcp": [PortBinding | dict]}) as
    the (HostIp, HostPort) pairs `validate_container_networking` takes."""
    result: dict[str, list[tuple[str, str]]] = {}
    for key, entries in bindings.items():
        pairs = []
        for entry in entries or []:
            if isinstance(entry, dict):
                pairs.append((str(entry.get("HostIp") or ""), str(entry.get("HostPort") or "")))
            else:
                pairs.append((str(getattr(entry, "host_ip", "")), str(getattr(entry, "host_port", ""))))
        result[key] = pairs
    return result


# writing: networks --------------------------------------------------------------------------


def _ipam_config_json(config: IPAMConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"Subnet": config.subnet, "Gateway": config.gateway}
    if config.ip_range:
        out["IPRange"] = config.ip_range
    if config.aux_addresses:
        out["AuxiliaryAddresses"] = dict(config.aux_addresses)
    return out


def network_json(service: NetworkService, record: NetworkRecord, *,
                 with_containers: bool = True) -> dict[str, Any]:
    """Docker's `Network` object; `Containers` lists running containers' endpoints."""
    containers: dict[str, Any] = {}
    if with_containers:
        for attachment, ep in service.endpoints_on(record.id):
            containers[attachment.container_id] = {
                "Name": attachment.name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac,
                "IPv4Address": ep.address,
                "IPv6Address": ep.address6,
            }
    return {
        "Name": record.name,
        "Id": record.id,
        "Created": rfc3339(record.created),
        "Scope": record.scope,
        "Driver": record.driver,
        "EnableIPv4": record.enable_ipv4,
        "EnableIPv6": record.enable_ipv6,
        "IPAM": {
            "Driver": record.ipam_driver or "default",
            "Options": (dict(record.ipam_options)
                        if record.ipam_options is not None and not record.predefined else None),
            "Config": [_ipam_config_json(c) for c in record.ipam],
        },
        "Internal": record.internal,
        "Attachable": record.attachable,
        "Ingress": record.ingress,
        "ConfigFrom": {"Network": record.config_from},
        "ConfigOnly": record.config_only,
        "Containers": containers,
        "Options": service.network_options(record),
        "Labels": dict(record.labels),
    }


# writing: containers -------------------------------------------------------------------------


def _endpoint_ipam_json(request: EndpointRequest) -> dict[str, Any] | None:
    """`EndpointSettings.IPAMConfig`: the fields the client set (Docker omits empty ones),
    null when it set none."""
    out: dict[str, Any] = {}
    if request.ipv4_address:
        out["IPv4Address"] = request.ipv4_address
    if request.ipv6_address:
        out["IPv6Address"] = request.ipv6_address
    if request.link_local_ips:
        out["LinkLocalIPs"] = list(request.link_local_ips)
    return out or None


def _endpoint_json(service: NetworkService, record: NetworkRecord, request: EndpointRequest,
                   attachment: AttachmentRecord | None, ep: EndpointState | None) -> dict[str, Any]:
    ipam_config = _endpoint_ipam_json(request)
    driver_opts: dict[str, str] | None = dict(request.driver_opts) or None
    if attachment is not None and ep is not None:
        shown = service.endpoint_driver_options(record, attachment, ep)
        if shown:
            driver_opts = {**(driver_opts or {}), **shown}
    return {
        "IPAMConfig": ipam_config,
        "Links": list(request.links) or None,
        "Aliases": list(request.aliases) or None,
        "MacAddress": ep.mac if ep else request.mac_address,
        "DriverOpts": driver_opts,
        "GwPriority": 0,
        "NetworkID": record.id,
        "EndpointID": ep.endpoint_id if ep else "",
        "Gateway": ep.gateway if ep else "",
        "IPAddress": ep.ip if ep else "",
        "IPPrefixLen": ep.prefixlen if ep else 0,
        "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": ep.ip6 if ep else "",
        "GlobalIPv6PrefixLen": ep.prefixlen6 if ep else 0,
        "DNSNames": list(ep.dns_names) if ep and ep.dns_names else None,
    }


def ports_json(service: NetworkService, container_id: str,
               exposed_ports: Iterable[str]) -> dict[str, Any]:
    """`NetworkSettings.Ports`: each port with its host bindings, exposed-only ones null.
    Empty for a container that isn't running (as Docker shows a stopped one)."""
    attachment = service.attachment(container_id)
    if attachment is None:
        return {}
    ports: dict[str, Any] = {}
    for key in exposed_ports:
        try:
            start, end, proto = parse_port_key(key)
        except ValueError:
            continue
        for port in range(start, end + 1):
            ports.setdefault(f"{port}/{proto}", None)
    for p in attachment.ports:
        bucket = ports.get(f"{p.container_port}/{p.protocol}")
        if bucket is None:
            bucket = ports[f"{p.container_port}/{p.protocol}"] = []
        bucket.append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
    return ports


def network_settings_json(service: NetworkService, container_id: str,
                          networking: ContainerNetworking,
                          exposed_ports: Iterable[str] = ()) -> dict[str, Any]:
    """A container's `NetworkSettings` (inspect), with API 1.50's deprecated top-level
    fields filled from the default `bridge` network's endpoint, as Docker does."""
    attachment = service.attachment(container_id)
    live = {ep.network_id: ep for ep in attachment.endpoints} if attachment else {}
    networks: dict[str, Any] = {}
    legacy: EndpointState | None = None
    for record in service.container_networks(networking):
        request = networking.networks.get(record.id, EndpointRequest())
        ep = live.get(record.id)
        networks[record.name] = _endpoint_json(service, record, request, attachment, ep)
        if record.name == "bridge":
            legacy = ep
    sandbox_key = attachment.netns if attachment and attachment.netns not in ("", "host") else ""
    return {
        "Bridge": "",
        "SandboxID": service.sandbox_id(container_id),
        "SandboxKey": sandbox_key,
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports_json(service, container_id, exposed_ports),
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": legacy.endpoint_id if legacy else "",
        "Gateway": legacy.gateway if legacy else "",
        "GlobalIPv6Address": legacy.ip6 if legacy else "",
        "GlobalIPv6PrefixLen": legacy.prefixlen6 if legacy else 0,
        "IPAddress": legacy.ip if legacy else "",
        "IPPrefixLen": legacy.prefixlen if legacy else 0,
        "IPv6Gateway": legacy.gateway6 if legacy else "",
        "MacAddress": legacy.mac if legacy else "",
        "Networks": networks,
    }


def summary_ports_json(service: NetworkService, container_id: str,
                       exposed_ports: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`docker ps`'s `Ports`: bound ports with IP and PublicPort, exposed ones without."""
    attachment = service.attachment(container_id)
    out: list[dict[str, Any]] = []
    bound: set[str] = set()
    if attachment is not None:
        for p in attachment.ports:
            bound.add(f"{p.container_port}/{p.protocol}")
            out.append({"IP": p.host_ip, "PrivatePort": p.container_port,
                        "PublicPort": p.host_port, "Type": p.protocol})
    for key in exposed_ports:
        try:
            start, end, proto = parse_port_key(key)
        except ValueError:
            continue
        for port in range(start, end + 1):
            if f"{port}/{proto}" not in bound:
                out.append({"PrivatePort": port, "Type": proto})
    return out


def summary_networks_json(service: NetworkService, container_id: str,
                          networking: ContainerNetworking) -> dict[str, Any]:
    """`docker ps`'s `NetworkSettings`: {"Networks": {name: a short EndpointSettings}}."""
    attachment = service.attachment(container_id)
    live = {ep.network_id: ep for ep in attachment.endpoints} if attachment else {}
    networks: dict[str, Any] = {}
    for record in service.container_networks(networking):
        ep = live.get(record.id)
        networks[record.name] = {
            "NetworkID": record.id,
            "EndpointID": ep.endpoint_id if ep else "",
            "Gateway": ep.gateway if ep else "",
            "IPAddress": ep.ip if ep else "",
            "IPPrefixLen": ep.prefixlen if ep else 0,
            "IPv6Gateway": ep.gateway6 if ep else "",
            "GlobalIPv6Address": ep.ip6 if ep else "",
            "GlobalIPv6PrefixLen": ep.prefixlen6 if ep else 0,
            "MacAddress": ep.mac if ep else "",
        }
    return {"Networks": networks}
