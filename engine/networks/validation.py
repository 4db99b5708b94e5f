"""Checking a container's networking request with Docker's rules and words.

At `create` (and when `network connect` adds an endpoint) nothing is allocated yet: the
request is only checked against the networks it names, and what passes is stored in the
container's record as a `ContainerNetworking`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import attrs

from engine.errors import InvalidParameter
from engine.networks import etcfiles, ipam
from engine.networks.catalog import NetworkCatalog
from engine.networks.linkspec import LinkFormatError, is_container_mode, parse_link
from engine.networks.model import ContainerNetworking, EndpointRequest, NetworkRecord
from engine.networks.ports import requests_from_bindings


def check_network_mode(network_mode: str, *, hostname: str = "", links: Sequence[str] = (),
                       dns: Sequence[str] = (), extra_hosts: Sequence[str] = (),
                       port_bindings: Mapping[str, object] | None = None,
                       publish_all: bool = False, exposed_ports: Iterable[str] = ()) -> None:
    """What Docker refuses in a create request's network mode before anything else (its
    words): `container:` mode with what only a namespace's owner can set (hostname, links,
    DNS servers, hosts entries, ports), and `host` mode with links. `hostname` and
    `exposed_ports` are the request's own, before the image's are merged in."""
    if is_container_mode(network_mode):
        if not network_mode.partition(":")[2]:
            raise InvalidParameter(
                "invalid network mode: invalid container format container:<name|id>")
        conflicts = (
            (hostname, "hostname and the network mode"),
            (links, "container type network can't be used with links. This would result in "
                    "undefined behavior"),
            (dns, "dns and the network mode"),
            (extra_hosts, "custom host-to-IP mapping and the network mode"),
            (port_bindings or publish_all, "port publishing and the container type network mode"),
            (list(exposed_ports), "port exposing and the container type network mode"),
        )
        for present, words in conflicts:
            if present:
                raise InvalidParameter(f"conflicting options: {words}")
    if network_mode == "host" and links:
        raise InvalidParameter("conflicting options: host type networking can't be used with "
                               "links. This would result in undefined behavior")


def _resolve_mode(catalog: NetworkCatalog, network_mode: str) -> NetworkRecord:
    mode = network_mode or "default"
    if mode in ("default", "bridge"):
        return catalog.default_bridge
    return catalog.get(mode)


def validate_container_networking(
    catalog: NetworkCatalog, *, network_mode: str,
    endpoints: Mapping[str, EndpointRequest] | None = None,
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
    if is_container_mode(network_mode):
        check_network_mode(network_mode)
        # the other container's namespace, files and names: nothing of its own
        return ContainerNetworking(mode=network_mode, dns_search=list(dns_search),
                                   dns_options=list(dns_options)), warnings
    first = _resolve_mode(catalog, network_mode)
    ordered: dict[str, EndpointRequest] = {first.id: EndpointRequest()}
    for key, request in (endpoints or {}).items():
        record = _resolve_mode(catalog, key) if key in ("default", "bridge") else catalog.get(key)
        ordered[record.id] = request
    if mac_address and not ordered[first.id].mac_address:
        ordered[first.id] = attrs.evolve(ordered[first.id], mac_address=mac_address)
    exclusive = [catalog.records[n] for n in ordered
                 if catalog.driver(catalog.records[n]).namespace != "private"]
    if exclusive and len(ordered) > 1:
        which = "host" if exclusive[0].driver == "host" else "private (none)"
        raise InvalidParameter(
            f"container cannot be connected to multiple networks with one of the networks in "
            f"{which} mode")
    for nid, request in ordered.items():
        check_endpoint_request(catalog, catalog.records[nid], request)
    requests = requests_from_bindings(port_bindings or {}, publish_all=publish_all,
                                      exposed=exposed_ports)
    if exclusive:
        if requests and exclusive[0].driver == "host":
            warnings.append("Published ports are discarded when using host network mode")
        requests = []
    ipv6 = any(catalog.records[n].enable_ipv6 for n in ordered)
    for port in requests:
        if ":" in port.host_ip and port.host_ip != "::" and not ipv6:
            raise InvalidParameter(
                f"publishing on the IPv6 address {port.host_ip} needs an IPv6 network: moorage "
                "has no proxy to carry IPv6 clients to an IPv4-only container (connect it to a "
                "network made with --ipv6)")
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


def check_endpoint_request(catalog: NetworkCatalog, record: NetworkRecord,
                           request: EndpointRequest) -> None:
    """Aliases, MAC and static addresses of one endpoint, against the network it is on."""
    driver = catalog.driver(record)
    if request.aliases and driver.namespace != "private":
        raise InvalidParameter("network-scoped aliases are only supported for user-defined "
                               "networks")
    if request.mac_address and not ipam.valid_mac(request.mac_address):
        raise InvalidParameter(f"invalid MAC address {request.mac_address}")
    for link in request.links:
        try:
            parse_link(link)
        except LinkFormatError as exc:
            raise InvalidParameter(str(exc)) from None
    if (request.ipv4_address or request.ipv6_address) and record.name == "bridge":
        raise InvalidParameter(
            "user specified IP address is supported on user defined networks only")
    if request.ipv4_address:
        if not driver.uses_ipam or record.pool is None or not record.subnet_given:
            raise InvalidParameter("user specified IP address is supported only when "
                                   "connecting to networks with user configured subnets")
        _check_static(catalog.pools.get(record.id),
                      ipam.parse_address(request.ipv4_address, "IPv4 address", 4))
    if request.ipv6_address:
        address = ipam.parse_address(request.ipv6_address, "IPv6 address", 6)
        if not record.enable_ipv6 or record.pool6 is None:
            raise InvalidParameter(f"no configured subnet contains IP address {address}")
        if not driver.uses_ipam or not record.subnet6_given:
            raise InvalidParameter("user specified IP address is supported only when "
                                   "connecting to networks with user configured subnets")
        _check_static(catalog.pools6.get(record.id), address)
    check_link_local(request.link_local_ips)


def _check_static(pool: ipam.AddressPool | None, address: ipam.IPAddress) -> None:
    if pool is not None and (address not in pool.subnet or address == pool.subnet.network_address
                             or (address.version == 4 and address == pool.subnet.broadcast_address)):
        raise InvalidParameter(f"Invalid address {address}: It does not belong to any of this "
                               "network's subnets")


def check_link_local(addresses: Sequence[str]) -> None:
    """`LinkLocalIPs`: any address but an unspecified one, as dockerd checks them."""
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidParameter(f"invalid link-local IP address: {text}") from None
        if address.is_unspecified:
            raise InvalidParameter(f"invalid link-local IP address: {text}")


__all__ = ["check_endpoint_request", "check_link_local", "check_network_mode",
           "validate_container_networking"]
