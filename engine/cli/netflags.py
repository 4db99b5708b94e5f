"""The networking flags of `moor run/create`: -p, -P, --network-alias, --ip, --ip6,
--link-local-ip, --dns, --dns-search, --dns-option, --add-host — parsed as the docker CLI parses them, and
written into the create body the way it writes them."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import click

from engine.cli.options import OptionError
from engine.networks.etcfiles import validate_extra_host
from engine.networks.ports import PortSpecError, bindings_for


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
        ipam = endpoint_ipam(self.ip, self.ip6, self.link_local_ips)
        if self.aliases or ipam:
            network = host.get("NetworkMode") or "default"
            endpoint: dict[str, Any] = {}
            if self.aliases:
                endpoint["Aliases"] = list(self.aliases)
            if ipam:
                endpoint["IPAMConfig"] = ipam
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
