"""IP address management: subnets for new networks, addresses for endpoints.

Subnets. A network created without `--subnet` gets the first subnet of Docker's default
pools (172.17.0.0/16 is kept for the default `bridge`; then 172.18.0.0/16 … 172.31.0.0/16;
then 192.168.0.0/20, 192.168.16.0/20 … 192.168.240.0/20) that overlaps none of: the
host's routes and addresses (the default route aside), and the subnets of this
daemon's other networks. Routes on this daemon's own bridges don't count against the
network they belong to, so a restart keeps its subnets. Because every bridge is made
(and so routed) when its network is created, a second moord on the same host sees the
first one's subnets as host routes and picks others.

Addresses. Each network has an `AddressPool`: the gateway (first host address unless
given), auxiliary addresses, the network and broadcast addresses are never handed out;
dynamic addresses come from the ip-range when there is one, lowest free first (with a
preference for the address the container had last time); a static `--ip` may be any
free host address of the subnet. Allocations live in memory only and are rebuilt at
start-up from the attachments of running containers, so an address can't stay "in use"
after its container is gone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import attrs

from engine.errors import Forbidden, InvalidParameter, SystemFailure
from engine.networks.model import IPAMConfig

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

DEFAULT_BRIDGE_POOL = IPv4Network("172.17.0.0/16")


def default_pools() -> list[IPv4Network]:
    """Docker's default local address pools, in order (172.17/16 first)."""
    pools = [IPv4Network(f"172.{n}.0.0/16") for n in range(17, 32)]
    pools += [IPv4Network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]
    return pools


def pick_subnet(taken: Iterable[IPv4Network], *, pools: Sequence[IPv4Network] | None = None,
                skip_default: bool = True) -> IPv4Network:
    """The first pool subnet overlapping nothing in `taken` (Docker's error otherwise)."""
    used = list(taken)
    for candidate in pools if pools is not None else default_pools():
        if skip_default and candidate == DEFAULT_BRIDGE_POOL:
            continue
        if not any(candidate.overlaps(t) for t in used):
            return candidate
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the "
                    "defaults to assign to the network")


def parse_network(text: str, what: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text!r}") from None
    if not isinstance(net, IPv4Network):
        raise InvalidParameter("IPv6 networks are not supported by moorage yet")
    return net


def parse_address(text: str, what: str) -> IPv4Address:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text!r}") from None
    if not isinstance(addr, IPv4Address):
        raise InvalidParameter("IPv6 addresses are not supported by moorage yet")
    return addr


def validate_config(config: IPAMConfig, *, subnet: IPv4Network | None = None) -> IPAMConfig:
    """Check a user's IPAM entry (or complete one with a chosen `subnet`) with Docker's rules;
    returns it normalised, the gateway filled in."""
    if subnet is None:
        if not config.subnet:
            if config.ip_range or config.gateway or config.aux_addresses:
                raise InvalidParameter("IPAM config: an ip-range, gateway or aux address "
                                       "needs a subnet")
            raise InvalidParameter("IPAM config: no subnet")
        subnet = parse_network(config.subnet, "subnet")
        if subnet.network_address != ipaddress.ip_interface(config.subnet).ip:
            raise InvalidParameter(f"invalid subnet {config.subnet}: it should be {subnet}")
    if subnet.prefixlen > 30:
        raise InvalidParameter(f"invalid subnet {subnet}: too small for a gateway and a container")
    if config.ip_range:
        ip_range = parse_network(config.ip_range, "ip-range")
        if not ip_range.subnet_of(subnet):
            raise InvalidParameter(
                f"invalid ip-range {ip_range}: it is not within the subnet {subnet}")
    if config.gateway:
        gateway = parse_address(config.gateway, "gateway")
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise InvalidParameter(
                f"invalid gateway {gateway}: it is not a host address of the subnet {subnet}")
    else:
        gateway = subnet.network_address + 1
    for name, text in config.aux_addresses.items():
        aux = parse_address(text, f"aux address {name}")
        if aux not in subnet:
            raise InvalidParameter(f"invalid aux address {name}={aux}: not in the subnet {subnet}")
    return IPAMConfig(str(subnet), str(gateway), config.ip_range, dict(config.aux_addresses))


def overlap_error() -> Forbidden:
    return Forbidden("invalid pool request: Pool overlaps with other one on this address space")


@attrs.define
class AddressPool:
    """The addresses of one network: who has which."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None
    reserved: set[IPv4Address] = attrs.field(factory=set)
    owners: dict[IPv4Address, str] = attrs.field(factory=dict)  # address -> endpoint id

    @classmethod
    def of(cls, config: IPAMConfig) -> AddressPool:
        subnet = IPv4Network(config.subnet)
        gateway = IPv4Address(config.gateway) if config.gateway else subnet.network_address + 1
        ip_range = IPv4Network(config.ip_range) if config.ip_range else None
        reserved = {gateway, subnet.network_address, subnet.broadcast_address}
        reserved |= {IPv4Address(a) for a in config.aux_addresses.values()}
        return cls(subnet, gateway, ip_range, reserved)

    def interface(self, address: IPv4Address) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{address}/{self.subnet.prefixlen}")

    def is_free(self, address: IPv4Address) -> bool:
        return address not in self.reserved and address not in self.owners

    def take(self, address: IPv4Address, owner: str) -> None:
        """Mark an address used (a static request or a restored allocation)."""
        if address not in self.subnet:
            raise InvalidParameter(
                f"Invalid address {address}: It does not belong to any of this network's subnets")
        current = self.owners.get(address)
        if current == owner:
            return
        if current is not None or address in self.reserved:
            raise InvalidParameter(f"Address already in use: {address}")
        self.owners[address] = owner

    def allocate(self, owner: str, preferred: IPv4Address | None = None) -> IPv4Address:
        """The lowest free address of the ip-range (or subnet); `preferred` if it is free."""
        space = self.ip_range or self.subnet
        if preferred is not None and preferred in space and self.is_free(preferred):
            self.owners[preferred] = owner
            return preferred
        # walk the range; /16s have 65k addresses, so skip quickly over taken ones
        for address in space.hosts() if space.prefixlen < 31 else space:
            if self.is_free(address):
                self.owners[address] = owner
                return address
        raise SystemFailure(f"no available IPv4 addresses on this network's address pools: "
                            f"{self.subnet}")

    def release(self, owner: str) -> None:
        for address in [a for a, o in self.owners.items() if o == owner]:
            del self.owners[address]

    def in_use(self) -> int:
        return len(self.owners)


def mac_for(address: IPv4Address) -> str:
    """The MAC Docker used to derive from an address: 02:42 then the four octets.

    Deriving it from the address keeps neighbours' ARP caches right when an address is
    reused by another container.
    """
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def valid_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                   for p in parts)
