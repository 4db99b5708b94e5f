"""The bridge driver's nftables tables: rendered whole from state, applied atomically.

moord keeps two tables of its own (`table ip <prefix>` and, for IPv6 networks, `table
ip6 <prefix>`) and never touches anyone else's (Docker's `ip nat`/`ip filter`, Podman's
`netavark`, firewalld's). The tables are a pure function of the bridge networks and the
published ports, and every change replaces both in one `nft -f -` transaction:

    table ip T          # make sure it exists, so the delete can't fail
    delete table ip T
    table ip T { … }    # the whole new table
    table ip6 T         # the same for IPv6 (only created and deleted: no IPv6 network)
    delete table ip6 T
    table ip6 T { … }

so nothing is ever duplicated (a moord restart re-renders the same table), nothing is
left behind (a removed port simply isn't in the next rendering), and there is never a
moment with half a ruleset. Rendering a few hundred rules and loading them takes a few
milliseconds.

What the table holds:

- `prerouting`/`output` (nat, priority -100; nft 1.0.6 refuses `dstnat` on the output
  hook): packets for a local address (`fib daddr type local`) jump to `published`, which
  DNATs each published port to its container. `output` is what makes 127.0.0.1 and the
  host's own addresses work from the host itself, without a proxy process.
- `postrouting` (nat, srcnat): masquerade what leaves a non-internal network for
  elsewhere; masquerade 127.0.0.0/8 sources going into a bridge (loopback clients of a
  published port; the bridge also needs `route_localnet=1`); masquerade DNATed traffic
  that comes back out of the bridge it came from (hairpin: a container reaching a
  published port of its own network through a host address).
- `guard` (filter prerouting, raw priority): drop packets to 127.0.0.0/8 arriving from
  a bridge, so `route_localnet` doesn't open the host's loopback services to containers.
- `forward` (filter): internal networks talk only among themselves; two different
  networks of this daemon can't reach each other (as Docker isolates its bridges).

The ip6 table has the same chains for the IPv6 subnets and the ports published on IPv6
addresses (DNAT to the container's IPv6 address, masquerading out, hairpin, isolation),
except `guard` (the kernel never routes ::1 off `lo`) and the loopback masquerade: a
client of ::1 can't be DNATed at all, so the output chain leaves ::1 alone and moord
forwards those connections itself (engine.networks.loopback6).

A forward-hook `drop` policy in somebody else's table (Docker's `filter FORWARD` when
dockerd is installed) still applies to our packets: nftables accepts a packet only if
every base chain does. docs/networks.md says what to add then.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import attrs
import trio

from plugins.network_contract import NetworkDriverError, PublishedPort

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}\*?$")

NFT = "nft"


@attrs.frozen
class BridgeRules:
    """One bridge network's part of the tables (`subnet6` on an IPv6 network)."""

    bridge: str
    subnet: ipaddress.IPv4Network
    internal: bool = False
    masquerade: bool = True
    subnet6: ipaddress.IPv6Network | None = None


@attrs.frozen
class _Family:
    """What differs between the `ip` and the `ip6` table."""

    name: str  # nft's family and address keyword: "ip" or "ip6"
    version: int
    loopback: str  # the loopback net (IPv6's can't be DNATed: see engine.networks.loopback6)


_IPV4 = _Family("ip", 4, "127.0.0.0/8")
_IPV6 = _Family("ip6", 6, "::1")


def _quote(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"unsafe interface name {name!r}")
    return f'"{name}"'


def render_table(table: str, bridges: Sequence[BridgeRules], ports: Sequence[PublishedPort],
                 *, prefix: str) -> str:
    """The complete ruleset text for `table ip <table>` and `table ip6 <table>` (each a
    replacement, see the module doc); the ip6 table has only the IPv6 networks."""
    if not _NAME.match(table):
        raise ValueError(f"unsafe table name {table!r}")
    subnets4 = [(b, b.subnet) for b in bridges]
    subnets6 = [(b, b.subnet6) for b in bridges if b.subnet6 is not None]
    return (_render_family(_IPV4, table, subnets4, ports, prefix)
            + _render_family(_IPV6, table, subnets6, ports, prefix))


def _render_family(family: _Family, table: str,
                   bridges: Sequence[tuple[BridgeRules, ipaddress.IPv4Network | ipaddress.IPv6Network]],
                   ports: Sequence[PublishedPort], prefix: str) -> str:
    ip = family.name
    lines = [f"table {ip} {table}", f"delete table {ip} {table}"]
    if not bridges:
        return "\n".join(lines) + "\n"
    lines.append(f"table {ip} {table} {{")

    if family.version == 4:  # IPv6 loopback never leaves `lo`: the kernel guards it
        lines.append("  chain guard {")
        lines.append("    type filter hook prerouting priority raw; policy accept;")
        for b, _ in bridges:
            lines.append(f"    iifname {_quote(b.bridge)} ip daddr {family.loopback} drop")
        lines.append("  }")

    local = "fib daddr type local jump published"
    lines.append("  chain prerouting {")
    lines.append("    type nat hook prerouting priority -100; policy accept;")
    lines.append(f"    {local}")
    lines.append("  }")
    lines.append("  chain output {")
    lines.append("    type nat hook output priority -100; policy accept;")
    lines.append(f"    {local}" if family.version == 4
                 else f"    ip6 daddr != {family.loopback} {local}")
    lines.append("  }")

    lines.append("  chain published {")
    for p in sorted(ports, key=lambda p: (p.host_port, p.protocol, p.host_ip)):
        if p.protocol not in ("tcp", "udp"):
            raise ValueError(f"unsupported protocol {p.protocol!r}")
        host_ip = ipaddress.ip_address(p.host_ip)
        if host_ip.version != family.version or (family.version == 6 and host_ip.is_loopback):
            continue
        container_ip = ipaddress.ip_address(p.container_ip)
        if container_ip.version != family.version:
            raise ValueError(f"port {p.host_port}: {container_ip} is not an IPv{family.version} "
                             "address")
        match = "" if host_ip.is_unspecified else f"{ip} daddr {host_ip} "
        target = f"{container_ip}" if family.version == 4 else f"[{container_ip}]"
        lines.append(f"    {match}{p.protocol} dport {int(p.host_port)} "
                     f"dnat to {target}:{int(p.container_port)}")
    lines.append("  }")

    lines.append("  chain postrouting {")
    lines.append("    type nat hook postrouting priority srcnat; policy accept;")
    for b, subnet in bridges:
        br = _quote(b.bridge)
        if family.version == 4:
            lines.append(f"    ip saddr {family.loopback} oifname {br} masquerade")
        lines.append(f"    {ip} saddr {subnet} oifname {br} ct status dnat masquerade")
        if not b.internal and b.masquerade:
            lines.append(f"    {ip} saddr {subnet} oifname != {br} masquerade")
    lines.append("  }")

    lines.append("  chain forward {")
    lines.append("    type filter hook forward priority filter; policy accept;")
    ours = _quote(f"{prefix}*")
    for b, _ in bridges:
        if b.internal:
            br = _quote(b.bridge)
            lines.append(f"    iifname {br} oifname != {br} drop")
            lines.append(f"    oifname {br} iifname != {br} drop")
    # a published port stays reachable through a host address from any other network
    lines.append("    ct status dnat accept")
    for b, _ in bridges:
        if not b.internal:
            br = _quote(b.bridge)
            lines.append(f"    iifname {br} oifname {ours} oifname != {br} drop")
            if not b.bridge.startswith(prefix):
                lines.append(f"    iifname {ours} oifname {br} drop")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


async def apply(ruleset: str, *, check_only: bool = False) -> None:
    """Load a ruleset with `nft -f -` (`-c`: only check it) on trio's process API."""
    argv = [NFT, "-c", "-f", "-"] if check_only else [NFT, "-f", "-"]
    try:
        result = await trio.run_process(argv, stdin=ruleset.encode(), capture_stdout=True,
                                        capture_stderr=True, check=False)
    except FileNotFoundError:
        raise NetworkDriverError("nft (the nftables CLI) is not installed") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise NetworkDriverError(f"nft refused the ruleset: {detail}")


async def delete_table(table: str) -> None:
    """Remove both tables if they exist (clean-up)."""
    await apply(render_table(table, [], [], prefix=table))
