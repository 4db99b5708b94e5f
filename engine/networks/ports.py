"""Published ports: Docker's `-p` grammar, the daemon's checks, and the host port allocator.

Parsing is shared: `moor run -p` turns flags into `ExposedPorts` + `PortBindings` with
`parse_publish` (the docker CLI's rules and messages), and the daemon checks what any
client sent with `requests_from_bindings`. Neither touches the network.

The allocator hands out host ports and *reserves* each one with a real socket bound to
it (TCP bound without listening, or UDP) for as long as the port is published:

- a port something else on the host already uses is refused (explicit) or skipped
  (ephemeral, 32768-60999 like Docker), because the bind fails;
- nothing else on the host can take a published port later, and clients never reach
  a stale listener: traffic is DNATed before it could reach the reserving socket;
- there is no allocation table to go stale: allocations live in memory and are
  rebuilt from the attachments of running containers when moord starts, so a port is
  never "already allocated" by a container that is gone.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence

import attrs

from engine.errors import InvalidParameter
from engine.networks.model import PortRequest

PROTOCOLS = ("tcp", "udp", "sctp")
#: host addresses whose reserving socket also serves ::1 clients (see engine.networks.loopback6)
LOOPBACK6_BINDINGS = ("::", "::1")
EPHEMERAL_RANGE = (32768, 60999)


class PortSpecError(ValueError):
    """A `-p` value or a port key is malformed; the message is Docker's."""


class PortAllocationError(Exception):
    """A host port can't be had; the message is what Docker says after "…on endpoint X: "."""


class _BindRefused(Exception):
    """The host refused a reservation: which address, and why."""

    def __init__(self, host_ip: str, error: OSError) -> None:
        super().__init__(host_ip, error)
        self.host_ip = host_ip
        self.error = error


# --- parsing ------------------------------------------------------------------------------


def parse_port_range(text: str) -> tuple[int, int]:
    """`80` → (80, 80); `8000-8010` → (8000, 8010)."""
    if text == "":
        raise PortSpecError("empty string specified for ports")
    start_text, sep, end_text = text.partition("-")
    try:
        start = _port_number(start_text)
        end = _port_number(end_text) if sep else start
    except ValueError:
        raise PortSpecError(f"invalid port range: {text}") from None
    if end < start:
        raise PortSpecError(f"invalid range specified for port: {text}")
    return start, end


def _port_number(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    value = int(text)
    if value > 65535:
        raise ValueError(text)
    return value


def split_proto(text: str) -> tuple[str, str]:
    """`80/udp` → ("80", "udp"); `80` → ("80", "tcp")."""
    port, sep, proto = text.partition("/")
    if not sep or proto == "":
        return port, "tcp"
    return port, proto


def parse_port_key(key: str) -> tuple[int, int, str]:
    """An `ExposedPorts`/`PortBindings` key, `80/tcp` or `8000-8010/udp`: (start, end, proto)."""
    port, proto = split_proto(key)
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise PortSpecError(f"invalid proto: {proto}")
    try:
        start, end = parse_port_range(port)
    except PortSpecError:
        raise PortSpecError(f"invalid containerPort: {port}") from None
    return start, end, proto


@attrs.frozen
class PublishSpec:
    """One `-p` entry expanded to one container port (what the CLI sends)."""

    port_key: str  # "80/tcp"
    host_ip: str
    host_port: str  # "", "8080" or "8000-8010"


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def parse_publish(raw: str) -> list[PublishSpec]:
    """One `-p/--publish` value, as the docker CLI reads it:
    `[ip:][hostPort:]containerPort[/proto]`, with ranges (`8000-8001:80-81`), a host range
    for one container port (`8000-8010:80`: any free one of them), `[v6]` addresses."""
    ip, host_port, container = _split_parts(raw)
    container, proto = split_proto(container)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise PortSpecError(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise PortSpecError(f"invalid IP address: {ip}") from None
    if container == "":
        raise PortSpecError(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container)
    except PortSpecError:
        raise PortSpecError(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except PortSpecError:
            raise PortSpecError(f"invalid hostPort: {host_port}") from None
        if (end - start) != (host_end - host_start) and end != start:
            raise PortSpecError(f"invalid ranges specified for container and host Ports: "
                                f"{container} and {host_port}")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise PortSpecError(f"invalid proto: {proto}")
    count = end - start + 1
    specs = []
    for i in range(count):
        hp = ""
        if host_port:
            hp = str(host_start + i)
            if count == 1 and host_start != host_end:
                hp += f"-{host_end}"
        specs.append(PublishSpec(f"{start + i}/{proto}", ip, hp))
    return specs


def bindings_for(values: Iterable[str]) -> tuple[dict[str, dict[str, object]],
                                                  dict[str, list[dict[str, str]]]]:
    """`-p` values as the create body's `ExposedPorts` and `HostConfig.PortBindings`."""
    exposed: dict[str, dict[str, object]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for value in values:
        for spec in parse_publish(value):
            exposed[spec.port_key] = {}
            bindings.setdefault(spec.port_key, []).append(
                {"HostIp": spec.host_ip, "HostPort": spec.host_port})
    return exposed, bindings


def requests_from_bindings(bindings: Mapping[str, Sequence[tuple[str, str]]],
                           *, publish_all: bool = False,
                           exposed: Iterable[str] = ()) -> list[PortRequest]:
    """The daemon's reading of `PortBindings` (key → [(HostIp, HostPort)]) and `-P`.

    `-P` publishes every exposed port not bound explicitly on an ephemeral port.
    """
    requests: list[PortRequest] = []
    seen: set[str] = set()
    for key, entries in bindings.items():
        port_text = split_proto(key)[0]
        try:
            start, end = parse_port_range(port_text)
        except PortSpecError:
            raise InvalidParameter(_bad_specification(port_text)) from None
        if start != end:
            raise InvalidParameter(_bad_specification(port_text))
        try:
            start, end, proto = parse_port_key(key)
        except PortSpecError as exc:
            raise InvalidParameter(str(exc)) from None
        seen.add(f"{start}/{proto}")
        for host_ip, host_port in entries or [("", "")]:
            requests.append(_request(start, proto, host_ip, host_port))
    if publish_all:
        for key in sorted(exposed, key=_key_order):
            try:
                start, end, proto = parse_port_key(key)
            except PortSpecError as exc:
                raise InvalidParameter(str(exc)) from None
            for port in range(start, end + 1):
                if f"{port}/{proto}" not in seen:
                    seen.add(f"{port}/{proto}")
                    requests.append(PortRequest(port, proto))
    return requests


def _bad_specification(port: str) -> str:
    """dockerd's words for a PortBindings key or HostPort that is not a port (or range)."""
    return f"invalid port specification: {json.dumps(port)}"


def _key_order(key: str) -> tuple[int, str]:
    port, proto = split_proto(key)
    try:
        return int(port.split("-")[0]), proto
    except ValueError:
        return 0, key


def _request(container_port: int, proto: str, host_ip: str, host_port: str) -> PortRequest:
    if proto == "sctp":
        raise InvalidParameter("publishing SCTP ports is not supported by moorage")
    if host_ip:
        try:
            address = ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidParameter(f"invalid IP address: {host_ip}") from None
        # "" means every address of each family the container has; "0.0.0.0" only IPv4,
        # "::" only IPv6 (every IPv4 address on a network without IPv6: moorage has no
        # proxy to carry IPv6 clients to an IPv4-only container)
        host_ip = "" if address.version == 4 and address.is_unspecified else str(address)
    start = end = 0
    if host_port:
        try:
            start, end = parse_port_range(host_port)
        except PortSpecError:
            raise InvalidParameter(_bad_specification(host_port)) from None
    return PortRequest(container_port, proto, host_ip, start, end if end != start else 0)


# --- allocation ---------------------------------------------------------------------------


def _shown_ip(host_ip: str) -> str:
    return host_ip or "0.0.0.0"


def is_ipv6(host_ip: str) -> bool:
    return ":" in host_ip


def _overlaps(a: str, b: str) -> bool:
    """Whether two bindings of one port clash: the same family, and the same address or
    either one every address (IPv6 sockets are IPv6-only, so 0.0.0.0 and :: don't)."""
    if is_ipv6(a) != is_ipv6(b):
        return False
    return a == b or a in ("0.0.0.0", "::") or b in ("0.0.0.0", "::")


@attrs.define(eq=False)
class PortAllocator:
    """Host ports by (protocol, port): which host addresses hold them, for whom."""

    ephemeral: tuple[int, int] = EPHEMERAL_RANGE
    bind_check: bool = True  # off only in unit tests that must not touch sockets
    _owners: dict[tuple[str, int], dict[str, str]] = attrs.field(factory=dict)
    _sockets: dict[tuple[str, str, int], socket.socket] = attrs.field(factory=dict)
    _cursor: int = 0

    def _conflicts(self, proto: str, host_ip: str, port: int) -> bool:
        holders = self._owners.get((proto, port)) or {}
        return any(_overlaps(host_ip, held) for held in holders)

    def _reserve(self, proto: str, host_ip: str, port: int) -> None:
        """Bind a socket to the port (raises OSError if the host has it)."""
        if not self.bind_check:
            return
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        family = socket.AF_INET6 if is_ipv6(host_ip) else socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if proto == "tcp" and host_ip in LOOPBACK6_BINDINGS:
                    # this one will listen (engine.networks.loopback6): without SO_REUSEADDR
                    # a connection of a previous moord in TIME_WAIT would keep it from
                    # binding again; once listening, it still excludes everyone else
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host_ip, port))
        except OSError:
            sock.close()
            raise
        self._sockets[(proto, host_ip, port)] = sock

    def _take(self, owner: str, proto: str, host_ip: str, port: int) -> None:
        self._owners.setdefault((proto, port), {})[host_ip] = owner

    def _drop(self, proto: str, host_ip: str, port: int) -> None:
        holders = self._owners.get((proto, port))
        if holders is not None:
            holders.pop(host_ip, None)
            if not holders:
                del self._owners[(proto, port)]
        sock = self._sockets.pop((proto, host_ip, port), None)
        if sock is not None:
            sock.close()

    def _try(self, owner: str, proto: str, host_ips: Sequence[str], port: int) -> None:
        """Take `port` on every address of `host_ips`, or none of them (raises _BindRefused
        when the host has it, PortAllocationError when this allocator gave it out)."""
        for host_ip in host_ips:
            if self._conflicts(proto, host_ip, port):
                raise PortAllocationError(
                    f"Bind for {_bracketed(host_ip)}:{port} failed: port is already allocated")
        done: list[str] = []
        for host_ip in host_ips:
            try:
                self._reserve(proto, host_ip, port)
            except OSError as exc:
                for taken in done:
                    self._drop(proto, taken, port)
                raise _BindRefused(host_ip, exc) from None
            self._take(owner, proto, host_ip, port)
            done.append(host_ip)

    def allocate(self, owner: str, proto: str, host_ip: str | Sequence[str], start: int = 0,
                 end: int = 0) -> int:
        """A host port for `owner` on every address of `host_ip` (one, or several that
        must share the port number, as `0.0.0.0` and `::` do for `-p 8080:80`): `start`
        exactly, the first free of `start`-`end`, or an ephemeral one (start 0). Raises
        PortAllocationError with Docker's words."""
        host_ips = [_shown_ip(host_ip)] if isinstance(host_ip, str) else [
            _shown_ip(ip) for ip in host_ip]
        if start and not end:
            try:
                self._try(owner, proto, host_ips, start)
            except _BindRefused as refused:
                raise PortAllocationError(
                    f"failed to bind host port {_bracketed(refused.host_ip)}:{start}/{proto}: "
                    f"{_reason(refused.error)}") from None
            return start
        if start:
            candidates: Iterable[int] = range(start, end + 1)
        else:
            low, high = self.ephemeral
            span = high - low + 1
            first = low + (self._cursor % span)
            candidates = [low + (first - low + i) % span for i in range(span)]
        for port in candidates:
            try:
                self._try(owner, proto, host_ips, port)
            except PortAllocationError:
                continue
            except _BindRefused as refused:
                if refused.error.errno == errno.EADDRNOTAVAIL:
                    raise PortAllocationError(
                        f"failed to bind host port {_bracketed(refused.host_ip)}:{port}/{proto}: "
                        f"{_reason(refused.error)}") from None
                continue
            if not start:
                self._cursor = port - self.ephemeral[0] + 1
            return port
        if start:
            raise PortAllocationError(
                f"Bind for {_bracketed(host_ips[0])}:{start}-{end} failed: port is already "
                "allocated")
        raise PortAllocationError("all ports are allocated")

    def restore(self, owner: str, proto: str, host_ip: str, port: int) -> str | None:
        """Re-register a port a running container already has (moord restarted); returns a
        warning if the reservation can't be re-made (the forwarding still works)."""
        host_ip = _shown_ip(host_ip)
        self._take(owner, proto, host_ip, port)
        if (proto, host_ip, port) in self._sockets:
            return None
        try:
            self._reserve(proto, host_ip, port)
        except OSError as exc:
            return (f"host port {_bracketed(host_ip)}:{port}/{proto} could not be reserved "
                    f"again: {_reason(exc)}")
        return None

    def reservation(self, proto: str, host_ip: str, port: int) -> socket.socket | None:
        """The socket that holds a bound port (None in unit tests without sockets): the
        IPv6 loopback forwarder listens on it."""
        return self._sockets.get((proto, _shown_ip(host_ip), port))

    def release(self, owner: str) -> None:
        for key, holders in list(self._owners.items()):
            for host_ip in [ip for ip, o in holders.items() if o == owner]:
                self._drop(key[0], host_ip, key[1])

    def owned_by(self, owner: str) -> list[tuple[str, str, int]]:
        return sorted((proto, ip, port) for (proto, port), holders in self._owners.items()
                      for ip, o in holders.items() if o == owner)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


def _bracketed(host_ip: str) -> str:
    """An address as it goes before `:port`: IPv6 in brackets, as Docker writes it."""
    return f"[{host_ip}]" if is_ipv6(host_ip) else host_ip


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
