"""moord's DNS server for containers: their names, and forwarding for everything else.

One server (UDP and TCP) listens on each engine network's gateway address, port 53 —
the default `bridge` included, which Docker leaves without names. moord runs in the
host's namespace, so the server is reachable from every container of the network
without anything inside the container, and it keeps answering while containers come
and go; after a moord restart it comes back with the names of the containers that
kept running.

Who asks matters: the source address of a query (on the network whose gateway it
reached) identifies the container, so

- a container resolves the names of every network it is on (not only the one it
  asked through), as with Docker's embedded DNS;
- its `--dns` servers, if it has any, are its upstreams (else the host's resolvers from
  /etc/resolv.conf, loopback ones included: moord can reach them);
- a container only on internal networks gets no forwarding (nothing leaves them).

Answers: A records for container names, `--network-alias`es, hostnames and short IDs
(TTL 600 like Docker) — and, for the container that made it, a link's alias (`--link
name:alias`) as the name it stands for — AAAA records for the IPv6 addresses of containers
on IPv6 networks, an empty NOERROR for other types of those names (so an AAAA lookup of an
IPv4-only container ends quickly), PTR for the containers' addresses (in-addr.arpa and
ip6.arpa); everything else is forwarded
as it came (raw bytes, same transport; a truncated UDP answer makes the client retry
over TCP, which is forwarded over TCP), SERVFAIL if no upstream answers.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Sequence

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
import trio

from engine.networks.etcfiles import ResolvConf, read_text

log = logging.getLogger(__name__)

TTL = 600
UPSTREAM_TIMEOUT = 2.0
TCP_IDLE = 10.0
MAX_IN_FLIGHT = 256

Upstream = tuple[str, int]


def parse_upstream(text: str) -> Upstream:
    """`1.1.1.1`, `1.1.1.1:5353`, `[::1]:53` or `::1` as (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


@attrs.frozen
class DNSSockets:
    udp: trio.socket.SocketType
    tcp: trio.SocketListener


@attrs.define
class _Member:
    """A container as the DNS server knows it."""

    networks: list[str] = attrs.field(factory=list)  # network ids, primary first
    links: dict[str, dict[str, str]] = attrs.field(factory=dict)  # net -> alias -> name
    upstreams: list[Upstream] = attrs.field(factory=list)
    forwards: bool = True


@attrs.define
class NameBook:
    """Names and addresses of the running containers, per network."""

    _names: dict[str, dict[str, list[str]]] = attrs.field(factory=dict)  # net -> name -> ips
    _reverse: dict[str, dict[str, str]] = attrs.field(factory=dict)  # net -> ip -> first name
    _members: dict[str, _Member] = attrs.field(factory=dict)  # container id
    _by_address: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (net, ip) -> cid
    _entries: dict[str, list[tuple[str, str, list[str]]]] = attrs.field(factory=dict)

    def add(self, container_id: str, network_id: str, ip: str, names: Sequence[str],
            links: dict[str, str] | None = None) -> None:
        """Register one endpoint: `names` resolve to `ip` on `network_id`; for this
        container only, each alias in `links` stands for the name it maps to there."""
        member = self._members.setdefault(container_id, _Member())
        if network_id not in member.networks:
            member.networks.append(network_id)
        if links:
            member.links[network_id] = {a.lower().rstrip("."): n for a, n in links.items()}
        table = self._names.setdefault(network_id, {})
        for name in names:
            ips = table.setdefault(name.lower().rstrip("."), [])
            if ip not in ips:
                ips.append(ip)
        if names:
            self._reverse.setdefault(network_id, {})[ip] = names[0]
        self._by_address[(network_id, ip)] = container_id
        self._entries.setdefault(container_id, []).append((network_id, ip, list(names)))

    def configure(self, container_id: str, *, upstreams: Sequence[Upstream], forwards: bool) -> None:
        member = self._members.setdefault(container_id, _Member())
        member.upstreams = list(upstreams)
        member.forwards = forwards

    def remove(self, container_id: str, network_id: str | None = None) -> None:
        """Forget a container (on one network, or on all)."""
        kept = []
        for net, ip, names in self._entries.pop(container_id, []):
            if network_id is not None and net != network_id:
                kept.append((net, ip, names))
                continue
            table = self._names.get(net, {})
            for name in names:
                key = name.lower().rstrip(".")
                ips = table.get(key, [])
                if ip in ips:
                    ips.remove(ip)
                if not ips:
                    table.pop(key, None)
            self._reverse.get(net, {}).pop(ip, None)
            self._by_address.pop((net, ip), None)
        if kept:
            self._entries[container_id] = kept
            member = self._members.get(container_id)
            if member is not None and network_id in member.networks:
                member.networks.remove(network_id)
                member.links.pop(network_id, None)
        else:
            self._members.pop(container_id, None)

    def who(self, network_id: str, source: str) -> str | None:
        return self._by_address.get((network_id, source))

    def scope(self, network_id: str, source: str) -> list[str]:
        """The networks whose names the asker may resolve (its own, or just this one)."""
        cid = self.who(network_id, source)
        member = self._members.get(cid) if cid else None
        if member is None:
            return [network_id]
        return list(member.networks)

    def lookup(self, network_id: str, source: str, name: str) -> list[str] | None:
        key = name.lower().rstrip(".")
        cid = self.who(network_id, source)
        member = self._members.get(cid) if cid else None
        for net in self.scope(network_id, source):
            links = member.links.get(net, {}) if member is not None else {}
            ips = self._names.get(net, {}).get(links.get(key, key).lower())
            if ips:
                return list(ips)
        return None

    def reverse(self, network_id: str, source: str, ip: str) -> str | None:
        for net in self.scope(network_id, source):
            name = self._reverse.get(net, {}).get(ip)
            if name:
                return name
        return None

    def upstreams(self, network_id: str, source: str) -> list[Upstream] | None:
        """The asker's own upstreams ([] for the host's), None if it may not forward."""
        cid = self.who(network_id, source)
        member = self._members.get(cid) if cid else None
        if member is None:
            return []
        if not member.forwards:
            return None
        return list(member.upstreams)


@attrs.define(eq=False)
class HostResolvers:
    """The host's nameservers from /etc/resolv.conf, re-read when the file changes."""

    path: str = "/etc/resolv.conf"
    override: list[Upstream] | None = None  # tests and `dns-upstreams`-style configuration
    _mtime: float = -1.0
    _servers: list[Upstream] = attrs.field(factory=list)
    _checked: float = -1e9

    async def get(self) -> list[Upstream]:
        if self.override is not None:
            return list(self.override)
        now = trio.current_time()
        if now - self._checked > 5.0:
            self._checked = now
            await trio.to_thread.run_sync(self._refresh)
        return list(self._servers)

    def _refresh(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            self._servers = []
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        conf = ResolvConf.parse(read_text(self.path))
        self._servers = [parse_upstream(ns) for ns in conf.nameservers]


def _response(query: dns.message.Message,
              rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    response.set_rcode(rcode)
    return response


def _error_reply(wire: bytes, rcode: int) -> bytes | None:
    """A bare reply with `rcode` for a query we couldn't parse (None if not even a header)."""
    if len(wire) < 12:
        return None
    (qid, flags) = struct.unpack("!HH", wire[:4])
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | (rcode & 0xF)
    return struct.pack("!HHHHHH", qid, out_flags, 0, 0, 0, 0)


@attrs.define(eq=False)
class DNSServer:
    """Answers queries for the book's names, forwards the rest (see the module doc)."""

    book: NameBook
    resolvers: HostResolvers = attrs.field(factory=HostResolvers)
    _limit: trio.Semaphore = attrs.field(factory=lambda: trio.Semaphore(MAX_IN_FLIGHT))

    async def answer(self, network_id: str, source: str, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one query (None: drop it)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _error_reply(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            return _response(query, dns.rcode.NOTIMP).to_wire()
        question = query.question[0]
        local = self._local_answer(network_id, source, query, question)
        if local is not None:
            max_size = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
            try:
                return local.to_wire(max_size=max_size)
            except dns.exception.TooBig:
                local.answer = []
                local.flags |= dns.flags.TC
                return local.to_wire()
        upstreams = self.book.upstreams(network_id, source)
        if upstreams is None:
            return _response(query, dns.rcode.REFUSED).to_wire()
        if not upstreams:
            upstreams = await self.resolvers.get()
        for upstream in upstreams:
            try:
                with trio.fail_after(UPSTREAM_TIMEOUT):
                    if tcp:
                        return await _forward_tcp(upstream, wire)
                    return await _forward_udp(upstream, wire, query.id)
            except (OSError, trio.TooSlowError, ValueError) as exc:
                log.debug("DNS upstream %s:%d failed: %s", upstream[0], upstream[1], exc)
        return _response(query, dns.rcode.SERVFAIL).to_wire()

    def _local_answer(self, network_id: str, source: str, query: dns.message.Message,
                      question: dns.rrset.RRset) -> dns.message.Message | None:
        if question.rdclass != dns.rdataclass.IN:
            return None
        name = question.name.to_text(omit_final_dot=True)
        if question.rdtype == dns.rdatatype.PTR and name.lower().endswith((".in-addr.arpa",
                                                                             ".ip6.arpa")):
            try:
                address = str(ipaddress.ip_address(dns.reversename.to_address(question.name)))
            except (dns.exception.SyntaxError, ValueError):
                return None
            target = self.book.reverse(network_id, source, address)
            if target is None:
                return None
            response = _response(query)
            response.answer.append(dns.rrset.from_text_list(
                question.name, TTL, dns.rdataclass.IN, dns.rdatatype.PTR, [target + "."]))
            return response
        ips = self.book.lookup(network_id, source, name)
        if ips is None:
            return None
        response = _response(query)
        response.flags |= dns.flags.AA
        for rdtype, family in ((dns.rdatatype.A, 4), (dns.rdatatype.AAAA, 6)):
            wanted = [ip for ip in ips if (":" in ip) == (family == 6)]
            if wanted and question.rdtype in (rdtype, dns.rdatatype.ANY):
                response.answer.append(dns.rrset.from_text_list(
                    question.name, TTL, dns.rdataclass.IN, rdtype, wanted))
        return response

    # serving -----------------------------------------------------------------------
    async def bind(self, address: str, port: int = 53) -> DNSSockets:
        """The UDP socket and TCP listener for (address, port); raises OSError.

        No IP_FREEBIND: a gateway that is not an address of the host (a third-party
        driver's routed network) must fail here, so its containers get the host's
        resolvers instead of a nameserver nobody answers on.
        """
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await udp.bind((address, port))
            await tcp.bind((address, udp.getsockname()[1]))  # port 0 (tests): the same for both
            tcp.listen(64)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return DNSSockets(udp, trio.SocketListener(tcp))

    async def serve_bound(self, network_id: str, sockets: DNSSockets) -> None:
        """Serve on bound sockets until cancelled; closes them at the end."""
        with sockets.udp:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._serve_udp, network_id, sockets.udp, nursery)
                    nursery.start_soon(
                        trio.serve_listeners,
                        lambda stream: self._serve_tcp(network_id, stream), [sockets.tcp])
            finally:
                with trio.CancelScope(shield=True):
                    await sockets.tcp.aclose()

    async def serve(self, network_id: str, address: str, port: int = 53, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind and serve (for `nursery.start`); bind errors come out of the start."""
        sockets = await self.bind(address, port)
        task_status.started()
        await self.serve_bound(network_id, sockets)

    async def _serve_udp(self, network_id: str, sock: trio.socket.SocketType,
                         nursery: trio.Nursery) -> None:
        while True:
            try:
                data, peer = await sock.recvfrom(65535)
            except OSError as exc:
                log.debug("DNS receive on %s failed: %s", network_id[:12], exc)
                continue
            nursery.start_soon(self._one_udp, network_id, sock, data, peer)

    async def _one_udp(self, network_id: str, sock: trio.socket.SocketType, data: bytes,
                       peer: tuple[str, int]) -> None:
        async with self._limit:
            try:
                reply = await self.answer(network_id, peer[0], data, tcp=False)
                if reply is not None:
                    await sock.sendto(reply, peer)
            except OSError as exc:
                log.debug("DNS reply to %s failed: %s", peer[0], exc)
            except Exception:
                log.exception("DNS query from %s failed", peer[0])

    async def _serve_tcp(self, network_id: str, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()[0]
        except OSError:
            return
        async with stream:
            buffer = b""
            while True:
                with trio.move_on_after(TCP_IDLE) as idle:
                    while True:
                        if len(buffer) >= 2:
                            (size,) = struct.unpack("!H", buffer[:2])
                            if len(buffer) >= 2 + size:
                                break
                        chunk = await stream.receive_some(65535)
                        if not chunk:
                            return
                        buffer += chunk
                if idle.cancelled_caught:
                    return
                message, buffer = buffer[2:2 + size], buffer[2 + size:]
                try:
                    async with self._limit:
                        reply = await self.answer(network_id, peer, message, tcp=True)
                    if reply is not None:
                        await stream.send_all(struct.pack("!H", len(reply)) + reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return


async def _forward_udp(upstream: Upstream, wire: bytes, query_id: int) -> bytes:
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
        await sock.connect(upstream)
        await sock.send(wire)
        while True:
            data = await sock.recv(65535)
            if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == query_id:
                return data


async def _forward_tcp(upstream: Upstream, wire: bytes) -> bytes:
    stream = await trio.open_tcp_stream(upstream[0], upstream[1])
    async with stream:
        await stream.send_all(struct.pack("!H", len(wire)) + wire)
        buffer = b""
        while len(buffer) < 2 or len(buffer) < 2 + struct.unpack("!H", buffer[:2])[0]:
            chunk = await stream.receive_some(65535)
            if not chunk:
                raise ValueError("the upstream closed the connection")
            buffer += chunk
        size = struct.unpack("!H", buffer[:2])[0]
        return buffer[2:2 + size]


