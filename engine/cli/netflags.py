"""The networking flags of `moor run/create`: -p, -P, --network-alias, --ip, --ip6,
--link-local-ip, --dns, --dns-search, --dns-option, --add-host, --link, --mac-address —
parsed as the docker CLI parses them, and written into the create body the way it writes
them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import click

from engine.cli.options import OptionError
from engine.networks.etcfiles import validate_extra_host
from engine.networks.linkspec import LinkFormatError, is_user_defined, parse_link
from engine.networks.ports import PortSpecError, bindings_for

_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def click_options() -> list[Any]:
    """The flags, as click decorators (added to run and create)."""
    return [
        click.option("--add-host", "add_hosts", multiple=True, metavar="LIST",
                     help="Add a custom host-to-IP mapping (host:ip)"),
        click.option("--dns", "dns", multiple=True, metavar="LIST",
                     help="Set custom DNS servers"),
        click.option("--dns-option", "--dns-opt", "dns_options", multiple=True, metavar="LIST",
                     help="Set DNS options"),
        click.option("--dns-search", "dns_search", multiple=True, metavar="LIST",
                     help="Set custom DNS search domains"),
        click.option("--ip", "ip", metavar="STRING", help="IPv4 address (e.g., 172.30.100.104)"),
        click.option("--ip6", "ip6", metavar="STRING",
                     help="IPv6 address (e.g., 2001:db8::33)"),
        click.option("--link-local-ip", "link_local_ips", multiple=True, metavar="LIST",
                     help="Container IPv4/IPv6 link-local addresses"),
        click.option("--link", "links", multiple=True, metavar="LIST",
                     help="Add link to another container"),
        click.option("--mac-address", "mac_address", metavar="STRING",
                     help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        click.option("--network-alias", "network_aliases", multiple=True, metavar="LIST",
                     help="Add network-scoped alias for the container"),
        click.option("-p", "--publish", "publish", multiple=True, metavar="LIST",
                     help="Publish a container's port(s) to the host"),
        click.option("-P", "--publish-all", "publish_all", is_flag=True,
                     help="Publish all exposed ports to random ports"),
    ]


@attrs.frozen
class NetworkFlags:
    publish: tuple[str, ...] = ()
    publish_all: bool = False
    aliases: tuple[str, ...] = ()
    ip: str = ""
    ip6: str = ""
    link_local_ips: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    add_hosts: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    mac_address: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> NetworkFlags:
        """From click's parameters (absent keys mean unset); checks values like docker."""
        flags = cls(
            publish=tuple(params.get("publish") or ()),
            publish_all=bool(params.get("publish_all")),
            aliases=tuple(params.get("network_aliases") or ()),
            ip=params.get("ip") or "",
            ip6=params.get("ip6") or "",
            link_local_ips=tuple(params.get("link_local_ips") or ()),
            dns=tuple(params.get("dns") or ()),
            dns_search=tuple(params.get("dns_search") or ()),
            dns_options=tuple(params.get("dns_options") or ()),
            add_hosts=tuple(params.get("add_hosts") or ()),
            links=tuple(params.get("links") or ()),
            mac_address=params.get("mac_address") or "",
        )
        flags.check()
        return flags

    def check(self) -> None:
        addresses: list[tuple[str, str, Callable[[str], object], str]] = [
            ("--ip", self.ip, ipaddress.IPv4Address, "an IPv4 address"),
                     ("--ip6", self.ip6, ipaddress.IPv6Address, "an IPv6 address")]
        addresses += [("--link-local-ip", a, ipaddress.ip_address, "an IP address")
                      for a in self.link_local_ips]
        for flag, value, parse, what in addresses:
            try:
                if value:
                    parse(value)
            except ValueError:
                raise OptionError(f'invalid argument "{value}" for "{flag}" flag: '
                                  f"{value} is not {what}") from None
        for server in self.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise OptionError(f'invalid argument "{server}" for "--dns" flag: ip address '
                                  f'is not correctly formatted: "{server}"') from None
        for entry in self.add_hosts:
            problem = validate_extra_host(entry)
            if problem:
                raise OptionError(f'invalid argument "{entry}" for "--add-host" flag: {problem}')
        try:
            bindings_for(self.publish)
        except PortSpecError as exc:
            raise OptionError(str(exc)) from None
        for link in self.links:
            try:
                parse_link(link)
            except LinkFormatError as exc:
                raise OptionError(f'invalid argument "{link}" for "--link" flag: {exc}') from None
        if self.mac_address and not _MAC.fullmatch(self.mac_address):
            raise OptionError(f"{self.mac_address} is not a valid mac address")

    def apply(self, body: dict[str, Any]) -> None:
        """Write the flags into a container create body (Config + HostConfig +
        NetworkingConfig, as built by `ContainerOptions.create_body`)."""
        exposed, bindings = bindings_for(self.publish)
        if exposed:
            body["ExposedPorts"] = {**(body.get("ExposedPorts") or {}), **exposed}
        host: dict[str, Any] = body.setdefault("HostConfig", {})
        if bindings:
            host["PortBindings"] = bindings
        host["PublishAllPorts"] = self.publish_all
        if self.dns:
            host["Dns"] = list(self.dns)
        if self.dns_search:
            host["DnsSearch"] = list(self.dns_search)
        if self.dns_options:
            host["DnsOptions"] = list(self.dns_options)
        if self.add_hosts:
            host["ExtraHosts"] = list(self.add_hosts)
        if self.links:
            host["Links"] = list(self.links)
        network = host.get("NetworkMode") or "default"
        # on a user network a link is an alias of the endpoint (as the docker CLI sends it)
        links = list(self.links) if is_user_defined(network) else []
        ipam = endpoint_ipam(self.ip, self.ip6, self.link_local_ips)
        if self.aliases or ipam or links or self.mac_address:
            endpoint: dict[str, Any] = {}
            if self.aliases:
                endpoint["Aliases"] = list(self.aliases)
            if ipam:
                endpoint["IPAMConfig"] = ipam
            if links:
                endpoint["Links"] = links
            if self.mac_address:
                endpoint["MacAddress"] = self.mac_address
            networking = body.setdefault("NetworkingConfig", {})
            endpoints = networking.get("EndpointsConfig") or {}
            endpoints[network] = {**endpoints.get(network, {}), **endpoint}
            networking["EndpointsConfig"] = endpoints


def endpoint_ipam(ip: str | None, ip6: str | None,
                  link_local_ips: Sequence[str] = ()) -> dict[str, Any]:
    """An endpoint's `IPAMConfig` from --ip, --ip6 and --link-local-ip (empty if none)."""
    ipam: dict[str, Any] = {}
    if ip:
        ipam["IPv4Address"] = ip
    if ip6:
        ipam["IPv6Address"] = ip6
    if link_local_ips:
        ipam["LinkLocalIPs"] = list(link_local_ips)
    return ipam


def port_lines(ports: Mapping[str, Sequence[Mapping[str, str]] | None],
               wanted: str | None = None) -> list[str]:
    """`docker port` output: `80/tcp -> 0.0.0.0:32768` lines, or bare `0.0.0.0:32768`
    lines for one asked port (`80` means `80/tcp`)."""
    if wanted is not None:
        port, _, proto = wanted.partition("/")
        key = f"{port}/{proto or 'tcp'}"
        return [_host_address(b) for b in ports.get(key) or []]
    lines = []
    for key in sorted(ports, key=_port_order):
        for binding in ports[key] or []:
            lines.append(f"{key} -> {_host_address(binding)}")
    return lines


def _host_address(binding: Mapping[str, str]) -> str:
    ip = binding.get("HostIp") or "0.0.0.0"
    if ":" in ip:
        ip = f"[{ip}]"
    return f"{ip}:{binding.get('HostPort', '')}"


def _port_order(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto)
