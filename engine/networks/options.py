"""The daemon's network settings (`moord` flags / daemon.toml)."""

from __future__ import annotations

import ipaddress
import re

import attrs

DEFAULT_PREFIX = "moorage"
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,6}$")


@attrs.frozen
class NetworkOptions:
    """The daemon's network settings (from `moord` flags / daemon.toml).

    - `prefix` (`--network-prefix`): names every host object of this daemon: the
      default bridge `<prefix>0`, other bridges `<prefix>-<id>`, veths `<prefix>…`, the
      nftables table `ip <prefix>`. Two daemons on one host need different prefixes.
    - `default_bridge_subnet` (`--default-bridge-subnet`, Docker's `--bip` idea): the
      default network's subnet; "" chooses 172.17.0.0/16, or the first free pool if
      the host already uses it.
    - `default_bridge_ipv6` (`--ipv6`, Docker's `ipv6`): IPv6 on the default network
      too; `default_bridge_subnet6` (`--fixed-cidr-v6`): its IPv6 subnet ("" picks a /64
      of the daemon's unique local /48).
    - `default_bridge_mtu`; `ephemeral_ports` for `-p PORT` and `-P`;
      `dns_port` (53; tests may use another).
    """

    prefix: str = DEFAULT_PREFIX
    default_bridge_subnet: str = ""
    default_bridge_ipv6: bool = False
    default_bridge_subnet6: str = ""
    default_bridge_mtu: int = 1500
    ephemeral_ports: tuple[int, int] = (32768, 60999)
    dns_port: int = 53

    def __attrs_post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"network prefix {self.prefix!r}: 1 to 7 lowercase letters or digits, "
                             "starting with a letter")
        if self.default_bridge_subnet6:
            try:
                subnet = ipaddress.ip_network(self.default_bridge_subnet6)
            except ValueError:
                subnet = None
            if not isinstance(subnet, ipaddress.IPv6Network):
                raise ValueError(f"fixed-cidr-v6 {self.default_bridge_subnet6!r} is not an IPv6 "
                                 "subnet (host bits must be zero)")
            if not self.default_bridge_ipv6:
                raise ValueError("fixed-cidr-v6 needs ipv6 = true")

    @property
    def default_bridge(self) -> str:
        return f"{self.prefix}0"


__all__ = ["DEFAULT_PREFIX", "NetworkOptions"]
