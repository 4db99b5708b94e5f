"""IP address management: subnets for new networks, addresses for endpoints.

Subnets. A network created without `--subnet` gets the first subnet of Docker's default
pools (172.17.0.0/16 is kept for the default `bridge`; then 172.18.0.0/16 … 172.31.0.0/16;
then 192.168.0.0/20, 192.168.16.0/20 … 192.168.240.0/20) that overlaps none of: the
host's routes and addresses (the default route aside), and the subnets of this
daemon's other networks. Routes on this daemon's own bridges don't count against the
network they belong to, so a restart keeps its subnets. Because every bridge is made
(and so routed) when its network is created, a second moord on the same host sees the
first one's subnets as host routes and picks others.

An `EnableIPv6` network without an IPv6 subnet gets a /64 of a unique local /48
(`fdXX:XXXX:XXXX::/48`, RFC 4193) derived from the host's machine ID and the daemon's
network prefix, so it is stable across restarts and differs between hosts; the same
overlap rules apply.

Addresses. Each network has an `AddressPool` per address family: the gateway (first host
address unless given), auxiliary addresses, the network address (and an IPv4 subnet's
broadcast address) are never handed out; dynamic addresses come from the ip-range when
there is one, lowest free first (with a preference for the address the container had
last time); a static `--ip`/`--ip6` may be any free host address of the subnet.
Allocations live in memory only and are rebuilt at start-up from the attachments of
running containers, so an address can't stay "in use" after its container is gone.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator, Sequence

import attrs

from engine.errors import Forbidden, InvalidParameter, SystemFailure
from engine.networks.model import IPAMConfig

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address
IPv6Network = ipaddress.IPv6Network
IPv6Address = ipaddress.IPv6Address
IPNetwork = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

DEFAULT_BRIDGE_POOL = IPv4Network("172.17.0.0/16")
ULA_SUBNET_PREFIX = 64  # each IPv6 network's share of the daemon's unique local /48


def default_pools() -> list[IPv4Network]:
    """Docker's default local address pools, in order (172.17/16 first)."""
    pools = [IPv4Network(f"172.{n}.0.0/16") for n in range(17, 32)]
    pools += [IPv4Network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]
    return pools


def pick_subnet(taken: Iterable[IPNetwork], *, pools: Sequence[IPv4Network] | None = None,
                skip_default: bool = True) -> IPv4Network:
    """The first pool subnet overlapping nothing in `taken` (Docker's error otherwise)."""
    used = [t for t in taken if t.version == 4]
    for candidate in pools if pools is not None else default_pools():
        if skip_default and candidate == DEFAULT_BRIDGE_POOL:
            continue
        if not any(candidate.overlaps(t) for t in used):
            return candidate
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the "
                    "defaults to assign to the network")


def ula_base(seed: str) -> IPv6Network:
    """A unique local /48 (fd00::/8 plus 40 bits of `seed`'s hash), as RFC 4193 suggests."""
    digest = hashlib.sha256(seed.encode()).digest()
    return IPv6Network((b"\xfd" + digest[:5] + bytes(10), 48))


def pick_subnet6(taken: Iterable[IPNetwork], *, base: IPv6Network) -> IPv6Network:
    """The first /64 of `base` overlapping nothing in `taken`."""
    used = [t for t in taken if t.version == 6]
    for candidate in base.subnets(new_prefix=ULA_SUBNET_PREFIX):
        if not any(candidate.overlaps(t) for t in used):
            return candidate
    raise Forbidden("could not find an available, non-overlapping IPv6 address pool among the "
                    "defaults to assign to the network")


def parse_network(text: str, what: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text!r}") from None


def parse_address(text: str, what: str, version: int | None = None) -> IPAddress:
    """An address; `version` 4 or 6 refuses the other family (Docker's words)."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what} {text!r}") from None
    if version is not None and addr.version != version:
        raise InvalidParameter(f"invalid IPv{version} address: {text}")
    return addr


def _unusable(address: IPAddress, subnet: IPNetwork) -> bool:
    """The subnet's own address, and an IPv4 subnet's broadcast address."""
    if address == subnet.network_address:
        return True
    return subnet.version == 4 and address == subnet.broadcast_address


def validate_config(config: IPAMConfig, *, subnet: IPNetwork | None = None) -> IPAMConfig:
    """Check a user's IPAM entry (or complete one with a chosen `subnet`) with Docker's rules;
    returns it normalised, the gateway filled in. IPv4 and IPv6 alike."""
    if subnet is None:
        if not config.subnet:
            if config.ip_range or config.gateway or config.aux_addresses:
                raise InvalidParameter("IPAM config: an ip-range, gateway or aux address "
                                       "needs a subnet")
            raise InvalidParameter("IPAM config: no subnet")
        subnet = parse_network(config.subnet, "subnet")
        if subnet.network_address != ipaddress.ip_interface(config.subnet).ip:
            raise InvalidParameter(f"invalid subnet {config.subnet}: it should be {subnet}")
    family = f"an IPv{subnet.version} block"
    if subnet.max_prefixlen - subnet.prefixlen < 2:
        raise InvalidParameter(f"invalid subnet {subnet}: too small for a gateway and a container")
    if config.ip_range:
        ip_range = parse_network(config.ip_range, "ip-range")
        if ip_range.version != subnet.version:
            raise InvalidParameter(f"invalid ip-range {ip_range}: parent subnet is {family}")
        if not ip_range.subnet_of(subnet):  # type: ignore[arg-type]
            raise InvalidParameter(
                f"invalid ip-range {ip_range}: it is not within the subnet {subnet}")
    if config.gateway:
        gateway = parse_address(config.gateway, "gateway")
        if gateway.version != subnet.version:
            raise InvalidParameter(f"invalid gateway {gateway}: parent subnet is {family}")
        if gateway not in subnet or _unusable(gateway, subnet):
            raise InvalidParameter(
                f"invalid gateway {gateway}: it is not a host address of the subnet {subnet}")
    else:
        gateway = subnet.network_address + 1
    for name, text in config.aux_addresses.items():
        aux = parse_address(text, f"aux address {name}")
        if aux.version != subnet.version:
            raise InvalidParameter(f"invalid aux address {name}={aux}: parent subnet is {family}")
        if aux not in subnet:
            raise InvalidParameter(f"invalid aux address {name}={aux}: not in the subnet {subnet}")
    return IPAMConfig(str(subnet), str(gateway), config.ip_range, dict(config.aux_addresses))


def overlap_error() -> Forbidden:
    return Forbidden("invalid pool request: Pool overlaps with other one on this address space")


@attrs.define
class AddressPool:
    """The addresses of one network in one family: who has which."""

    subnet: IPNetwork
    gateway: IPAddress
    ip_range: IPNetwork | None = None
    reserved: set[IPAddress] = attrs.field(factory=set)
    owners: dict[IPAddress, str] = attrs.field(factory=dict)  # address -> endpoint id

    @classmethod
    def of(cls, config: IPAMConfig) -> AddressPool:
        subnet = ipaddress.ip_network(config.subnet)
        gateway = (ipaddress.ip_address(config.gateway) if config.gateway
                   else subnet.network_address + 1)
        ip_range = ipaddress.ip_network(config.ip_range) if config.ip_range else None
        reserved: set[IPAddress] = {gateway, subnet.network_address}
        if subnet.version == 4:
            reserved.add(subnet.broadcast_address)
        reserved |= {ipaddress.ip_address(a) for a in config.aux_addresses.values()}
        return cls(subnet, gateway, ip_range, reserved)

    @property
    def version(self) -> int:
        return self.subnet.version

    def interface(self, address: IPAddress) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(f"{address}/{self.subnet.prefixlen}")

    def is_free(self, address: IPAddress) -> bool:
        return address not in self.reserved and address not in self.owners

    def take(self, address: IPAddress, owner: str) -> None:
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

    def _candidates(self, space: IPNetwork) -> Iterator[IPAddress]:
        # lazily: an IPv6 /64 can't be listed, and /16s have 65k addresses
        if space.version == 4 and space.prefixlen >= 31:
            return iter(space)
        return iter(space.hosts())

    def allocate(self, owner: str, preferred: IPAddress | None = None) -> IPAddress:
        """The lowest free address of the ip-range (or subnet); `preferred` if it is free."""
        space = self.ip_range or self.subnet
        if preferred is not None and preferred in space and self.is_free(preferred):
            self.owners[preferred] = owner
            return preferred
        for address in self._candidates(space):
            if self.is_free(address):
                self.owners[address] = owner
                return address
        raise SystemFailure(f"no available IPv{self.version} addresses on this network's address "
                            f"pools: {self.subnet}")

    def release(self, owner: str) -> None:
        for address in [a for a, o in self.owners.items() if o == owner]:
            del self.owners[address]

    def in_use(self) -> int:
        return len(self.owners)


def mac_for(address: IPAddress) -> str:
    """The MAC Docker used to derive from an IPv4 address: 02:42 then the four octets.

    Deriving it from the address keeps neighbours' ARP caches right when an address is
    reused by another container.
    """
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed[-4:])


def valid_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                   for p in parts)
