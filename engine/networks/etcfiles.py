"""A container's /etc/hosts and /etc/resolv.conf, by network mode.

- `host`: the host's /etc/hosts (plus `--add-host`) and the host's resolv.conf as it is
  (`--dns*` flags replace its parts), since the container uses the host's network.
- `none`: localhost entries only; the host's resolv.conf without loopback resolvers
  (unreachable from the container's own namespace), `--dns*` applied.
- engine networks (bridge and the like): localhost entries, `--add-host` entries, then
  the container's own address and hostname; resolv.conf names moord's DNS server on
  the gateway of each of the container's networks (up to three; the first is the
  primary network's), the search domains and options of the host unless `--dns-search`
  / `--dns-option` replace them, and `ndots:0` (as Docker's embedded DNS) so a bare
  container name is asked as it is, before any search domain.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

LOCALHOST_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::\tip6-localnet\n"
    "ff00::\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)

HOST_GATEWAY = "host-gateway"


@attrs.frozen
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    other: tuple[str, ...] = ()  # lines kept as they are (sortlist, comments)

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        nameservers: list[str] = []
        search: list[str] = []
        options: list[str] = []
        other: list[str] = []
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith(("#", ";")):
                continue
            if words[0] == "nameserver" and len(words) >= 2:
                nameservers.append(words[1])
            elif words[0] in ("search", "domain"):
                search = words[1:]
            elif words[0] == "options":
                options.extend(words[1:])
            else:
                other.append(line)
        return cls(tuple(nameservers), tuple(search), tuple(options), tuple(other))

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in self.nameservers]
        if self.search:
            lines.append("search " + " ".join(self.search))
        if self.options:
            lines.append("options " + " ".join(self.options))
        lines.extend(self.other)
        return "\n".join(lines) + "\n"


def is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%")[0]).is_loopback
    except ValueError:
        return False


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def extra_host_lines(extra_hosts: Sequence[str], host_gateway: str) -> str:
    """`--add-host name:ip` (or `name=ip`) entries; `host-gateway` is the gateway address."""
    out = []
    for entry in extra_hosts:
        name, address = split_extra_host(entry)
        if address == HOST_GATEWAY:
            if not host_gateway:
                continue
            address = host_gateway
        out.append(f"{address}\t{name}\n")
    return "".join(out)


def split_extra_host(entry: str) -> tuple[str, str]:
    """`name:ip`, `name=ip` or `name:[v6]` into (name, address); address may be host-gateway."""
    if "=" in entry:
        name, _, address = entry.partition("=")
    else:
        name, _, address = entry.partition(":")
    address = address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    return name.strip(), address


def validate_extra_host(entry: str) -> str | None:
    """Docker's complaint about an `--add-host` value, or None."""
    name, address = split_extra_host(entry)
    if not name or not address:
        return f"bad format for add-host: \"{entry}\""
    if address == HOST_GATEWAY:
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return f"invalid IP address in add-host: \"{address}\""
    return None


def hosts_file(*, mode: str, hostname: str, domainname: str = "",
               addresses: Sequence[str] = (), extra_hosts: Sequence[str] = (),
               host_gateway: str = "", host_hosts: str | None = None,
               link_lines: Sequence[str] = ()) -> str:
    """The container's /etc/hosts (`mode`: host, none or network); `link_lines` name the
    containers it links to (engine.networks.linkspec.hosts_line), after its own entry."""
    if mode == "host":
        base = host_hosts if host_hosts is not None else read_text("/etc/hosts")
        text = base or LOCALHOST_HOSTS
        if not text.endswith("\n"):
            text += "\n"
        return text + extra_host_lines(extra_hosts, host_gateway)
    text = LOCALHOST_HOSTS + extra_host_lines(extra_hosts, host_gateway)
    names = hostname
    if domainname and hostname:
        names = f"{hostname}.{domainname} {hostname}"
    if names:
        for address in addresses:
            text += f"{address}\t{names}\n"
    return text + "".join(link_lines)


def resolv_conf(*, mode: str, host: ResolvConf, nameservers: Sequence[str] = (),
                dns: Sequence[str] = (), dns_search: Sequence[str] = (),
                dns_options: Sequence[str] = ()) -> str:
    """The container's /etc/resolv.conf.

    `nameservers`: moord's DNS servers for this container (engine networks); `dns`:
    the `--dns` servers (on engine networks they become the DNS server's upstreams for
    this container instead, as with Docker's embedded DNS).
    """
    search = tuple(dns_search) if dns_search else host.search
    if tuple(dns_search) == (".",):
        search = ()
    options = tuple(dns_options) if dns_options else host.options
    if mode == "host":
        servers = tuple(dns) or host.nameservers
        return ResolvConf(servers, search, options, host.other).render()
    if mode == "network" and nameservers:
        if not any(o.startswith("ndots:") for o in options):
            options = (*options, "ndots:0")
        return ResolvConf(tuple(nameservers[:3]), search, options, host.other).render()
    servers = tuple(dns) or tuple(ns for ns in host.nameservers if not is_loopback(ns))
    return ResolvConf(servers, search, options, host.other).render()
