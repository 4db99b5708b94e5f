"""`moor network create|ls|inspect|rm|connect|disconnect|prune` and `moor port`."""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import attrs
import click

from engine.cli.app import App, confirm, describe, error_line, for_each, out, pass_app
from engine.cli.client import APIError, ClientError, quote_path
from engine.cli.errors import CommandError
from engine.cli.formatting import (
    TemplateError,
    go_time,
    render_listing,
    truncate_id,
)
from engine.cli.inspecting import print_inspected
from engine.cli.netflags import endpoint_ipam, port_lines
from engine.cli.options import OptionError, build_filters, key_value_map

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --- create ------------------------------------------------------------------------------


def ipam_configs(subnets: Sequence[str], gateways: Sequence[str], ranges: Sequence[str],
                 aux: dict[str, str]) -> list[dict[str, Any]]:
    """Group --subnet/--gateway/--ip-range/--aux-address like the docker CLI: each of the
    others goes with the subnet that contains it."""
    def network(text: str, flag: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise OptionError(f'invalid argument "{text}" for "{flag}" flag: invalid CIDR '
                              f"address: {text}") from None

    def address(text: str, flag: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise OptionError(f'invalid argument "{text}" for "{flag}" flag: invalid IP address '
                              f"{text}") from None

    configs = [{"Subnet": s, "_net": network(s, "--subnet")} for s in subnets]

    def inside(item: Any, net: Any) -> bool:
        if item.version != net.version:
            return False
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            return bool(item.subnet_of(net))
        return bool(item in net)

    def owner(item: Any, what: str, text: str) -> dict[str, Any]:
        for config in configs:
            if inside(item, config["_net"]):
                return config
        raise OptionError(f"no matching subnet for {what} {text}")

    for text in ranges:
        config = owner(network(text, "--ip-range"), "range", text)
        if "IPRange" in config:
            raise OptionError(f"cannot configure multiple ranges ({config['IPRange']}, {text}) on "
                              f"the same subnet ({config['Subnet']})")
        config["IPRange"] = text
    for text in gateways:
        config = owner(address(text, "--gateway"), "gateway", text)
        if "Gateway" in config:
            raise OptionError(f"cannot configure multiple gateways ({config['Gateway']}, {text}) "
                              f"for the same subnet ({config['Subnet']})")
        config["Gateway"] = text
    for name, text in aux.items():
        config = owner(address(text, "--aux-address"), "aux-address", text)
        config.setdefault("AuxiliaryAddresses", {})[name] = text
    for config in configs:
        del config["_net"]
    return configs


@click.command(name="create", context_settings=CONTEXT)
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.option("--aux-address", "aux", multiple=True, metavar="MAP",
              help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
@click.option("-d", "--driver", default="bridge", show_default=True, metavar="STRING",
              help="Driver to manage the Network")
@click.option("--gateway", "gateways", multiple=True, metavar="STRINGS",
              help="IPv4 or IPv6 Gateway for the master subnet")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--ip-range", "ranges", multiple=True, metavar="STRINGS",
              help="Allocate container ip from a sub-range")
@click.option("--ipam-driver", default="default", metavar="STRING", help="IP Address Management Driver")
@click.option("--ipam-opt", "ipam_opts", multiple=True, metavar="MAP",
              help="Set IPAM driver specific options")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking")
@click.option("--label", "labels", multiple=True, metavar="LIST",
              help="Set metadata on a network")
@click.option("-o", "--opt", "opts", multiple=True, metavar="MAP",
              help="Set driver specific options")
@click.option("--subnet", "subnets", multiple=True, metavar="STRINGS",
              help="Subnet in CIDR format that represents a network segment")
@click.argument("name")
@pass_app
def create(app: App, attachable: bool, aux: tuple[str, ...], driver: str,
           gateways: tuple[str, ...], internal: bool, ranges: tuple[str, ...], ipam_driver: str,
           ipam_opts: tuple[str, ...], ipv6: bool, labels: tuple[str, ...], opts: tuple[str, ...],
           subnets: tuple[str, ...], name: str) -> None:
    """Create a network."""
    try:
        if (gateways or ranges or aux) and not subnets:
            raise OptionError("every ip-range or gateway must have a corresponding subnet")
        body = {
            "Name": name,
            "Driver": driver,
            "Internal": internal,
            "Attachable": attachable,
            "EnableIPv6": ipv6,
            "IPAM": {
                "Driver": ipam_driver,
                "Config": ipam_configs(subnets, gateways, ranges, key_value_map(aux, "--aux-address")),
                "Options": key_value_map(ipam_opts, "--ipam-opt"),
            },
            "Options": key_value_map(opts, "--opt"),
            "Labels": {k: v for k, _, v in (label.partition("=") for label in labels)},
        }
        result = app.client.post_json("/networks/create", json=body) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    if result.get("Warning"):
        error_line(f"WARNING: {result['Warning']}")
    out(f"{result.get('Id', '')}\n")


# --- ls ------------------------------------------------------------------------------------

NETWORKS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORKS_HEADERS = {
    "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
    "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


@attrs.define
class NetworkRow:
    data: dict[str, Any]
    trunc: bool = True

    def field(self, name: str) -> Any:
        getter = getattr(self, f"_f_{name}", None)
        if getter is None:
            if name == "Label":
                return lambda key: (self.data.get("Labels") or {}).get(key, "")
            raise TemplateError(f"can't evaluate field {name} in type network")
        return getter()

    def as_dict(self) -> dict[str, Any]:
        return {name: self.field(name) for name in sorted(NETWORKS_HEADERS)}

    def _f_ID(self) -> str:
        return truncate_id(str(self.data.get("Id", "")), full=not self.trunc)

    def _f_Name(self) -> str:
        return str(self.data.get("Name", ""))

    def _f_Driver(self) -> str:
        return str(self.data.get("Driver", ""))

    def _f_Scope(self) -> str:
        return str(self.data.get("Scope", ""))

    def _f_IPv4(self) -> str:
        return str(self.data.get("EnableIPv4", True)).lower()

    def _f_IPv6(self) -> str:
        return str(bool(self.data.get("EnableIPv6"))).lower()

    def _f_Internal(self) -> str:
        return str(bool(self.data.get("Internal"))).lower()

    def _f_Labels(self) -> str:
        labels = self.data.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def _f_CreatedAt(self) -> str:
        created = str(self.data.get("Created", ""))
        m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?Z$", created)
        if not m:
            return created
        stamp = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
        return go_time(stamp.timestamp())


@click.command(name="ls", context_settings=CONTEXT)
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"driver=bridge\")")
@click.option("--format", "fmt", metavar="STRING",
              help="Format output: 'table', 'table TEMPLATE', 'json', or a Go template")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@pass_app
def ls(app: App, filters: tuple[str, ...], fmt: str | None, no_trunc: bool, quiet: bool) -> None:
    """List networks."""
    try:
        found = app.client.get_json("/networks", {"filters": build_filters(filters)}) or []
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    rows = [NetworkRow(n, trunc=not no_trunc) for n in sorted(found, key=lambda n: n.get("Name", ""))]
    if quiet:
        out("".join(f"{row.field('ID')}\n" for row in rows))
        return
    try:
        out(render_listing(fmt, rows, NETWORKS_TABLE, NETWORKS_HEADERS))
    except TemplateError as exc:
        raise CommandError(f"failed to execute template: {exc}") from None


# --- inspect / rm / connect / disconnect / prune ----------------------------------------------


@click.command(name="inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", metavar="STRING",
              help="Format output using a Go template (e.g. '{{.Name}}') or 'json'")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics")
@click.argument("names", nargs=-1, required=True, metavar="NETWORK [NETWORK...]")
@pass_app
def inspect(app: App, fmt: str | None, verbose: bool, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(app.client.get_json(f"/networks/{quote_path(name)}",
                                             {"verbose": "true" if verbose else None}))
        except APIError as exc:
            errors.append(f"Error: No such network: {name}" if exc.status == 404 else describe(exc))
        except ClientError as exc:
            raise CommandError(describe(exc)) from None
    print_inspected(found, errors, fmt)


@click.command(name="rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@click.argument("names", nargs=-1, required=True, metavar="NETWORK [NETWORK...]")
@pass_app
def rm(app: App, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    client = app.client

    def one(name: str) -> None:
        try:
            client.call("DELETE", f"/networks/{quote_path(name)}").close()
        except APIError as exc:
            if force and exc.status == 404:
                return
            raise
        out(name + "\n")

    for_each(names, one)


@click.command(name="connect", context_settings=CONTEXT)
@click.option("--alias", "aliases", multiple=True, metavar="STRINGS",
              help="Add network-scoped alias for the container")
@click.option("--driver-opt", "driver_opts", multiple=True, metavar="STRINGS",
              help="driver options for the network")
@click.option("--ip", metavar="STRING", help="IPv4 address (e.g., \"172.30.100.104\")")
@click.option("--ip6", metavar="STRING", help="IPv6 address (e.g., \"2001:db8::33\")")
@click.option("--link", "links", multiple=True, metavar="LIST",
              help="Add link to another container")
@click.option("--link-local-ip", "link_local_ips", multiple=True, metavar="STRINGS",
              help="Add a link-local address for the container")
@click.argument("network")
@click.argument("container")
@pass_app
def connect(app: App, aliases: tuple[str, ...], driver_opts: tuple[str, ...], ip: str | None,
            ip6: str | None, links: tuple[str, ...], link_local_ips: tuple[str, ...],
            network: str, container: str) -> None:
    """Connect a container to a network."""
    try:
        endpoint: dict[str, Any] = {
            "Aliases": list(aliases) or None,
            "Links": list(links) or None,
            "DriverOpts": key_value_map(driver_opts, "--driver-opt") or None,
        }
        ipam = endpoint_ipam(ip, ip6, link_local_ips)
        if ipam:
            endpoint["IPAMConfig"] = ipam
        app.client.call("POST", f"/networks/{quote_path(network)}/connect",
                        json={"Container": container, "EndpointConfig": endpoint}).close()
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None


@click.command(name="disconnect", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.argument("network")
@click.argument("container")
@pass_app
def disconnect(app: App, force: bool, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    try:
        app.client.call("POST", f"/networks/{quote_path(network)}/disconnect",
                        json={"Container": container, "Force": force}).close()
    except ClientError as exc:
        raise CommandError(describe(exc)) from None


@click.command(name="prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help="Provide filter values (e.g. \"until=<timestamp>\")")
@pass_app
def prune(app: App, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    warning = ("WARNING! This will remove all custom networks not used by at least one "
               "container.\nAre you sure you want to continue? [y/N] ")
    if not force and not confirm(warning):
        return
    try:
        result = app.client.post_json("/networks/prune", {"filters": build_filters(filters)}) or {}
    except (ClientError, OptionError) as exc:
        raise CommandError(describe(exc)) from None
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        out("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted) + "\n")


def network_group() -> click.Group:
    """`moor network …`."""
    group = click.Group(name="network", help="Manage networks", context_settings=CONTEXT)
    for name, command in (("connect", connect), ("create", create), ("disconnect", disconnect),
                          ("inspect", inspect), ("ls", ls), ("list", ls), ("prune", prune),
                          ("rm", rm), ("remove", rm)):
        group.add_command(command, name=name)
    return group


# --- port ----------------------------------------------------------------------------------


@click.command(name="port", context_settings=CONTEXT)
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
@pass_app
def port(app: App, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    try:
        data = app.client.get_json(f"/containers/{quote_path(container)}/json")
    except ClientError as exc:
        raise CommandError(describe(exc)) from None
    ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port is not None:
        number, _, proto = private_port.partition("/")
        if not number.isdigit():
            raise CommandError(f"Error: invalid port ({private_port}): must be a number")
        lines = port_lines(ports, private_port)
        if not lines:
            name = str(data.get("Name", container)).lstrip("/")
            raise CommandError(f"Error: No public port '{number}/{proto or 'tcp'}' published "
                               f"for {name}")
    else:
        lines = port_lines(ports)
    out("".join(line + "\n" for line in lines))
