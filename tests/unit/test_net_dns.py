"""moord's DNS server over real sockets on 127.0.0.1: names per network, who is asking,
forwarding to an upstream the test runs itself (no traffic leaves the machine)."""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import trio

from engine.networks.dns import DNSServer, HostResolvers, NameBook, parse_upstream

NET_A = "a" * 64
NET_B = "b" * 64


def _book() -> NameBook:
    book = NameBook()
    book.add("c1", NET_A, "10.1.0.2", ["web", "frontend", "c1c1c1c1c1c1"])
    book.add("c2", NET_A, "10.1.0.3", ["db"])
    book.add("c2", NET_B, "10.2.0.3", ["db", "database"])
    book.add("c3", NET_B, "10.2.0.4", ["cache"])
    book.add("c3", NET_B, "2001:db8:2::4", ["cache"])  # an IPv6 network
    book.configure("c1", upstreams=[], forwards=True)
    book.configure("c3", upstreams=[], forwards=False)
    return book


def test_names_resolve_within_the_askers_networks() -> None:
    book = _book()
    # c1 is on A only: it sees A's names
    assert book.lookup(NET_A, "10.1.0.2", "db") == ["10.1.0.3"]
    assert book.lookup(NET_A, "10.1.0.2", "cache") is None
    # c2 is on A and B: asking through A, it resolves B's names too
    assert book.lookup(NET_A, "10.1.0.3", "cache") == ["10.2.0.4", "2001:db8:2::4"]
    assert book.lookup(NET_A, "10.1.0.3", "database") == ["10.2.0.3"]
    # names are case-insensitive and may be fully qualified
    assert book.lookup(NET_A, "10.1.0.2", "WEB.") == ["10.1.0.2"]
    # an unknown asker (the host itself) sees the network it asked
    assert book.lookup(NET_B, "10.2.0.1", "db") == ["10.2.0.3"]
    assert book.reverse(NET_A, "10.1.0.3", "10.1.0.2") == "web"


def test_removal_per_network_and_whole() -> None:
    book = _book()
    book.remove("c2", NET_B)
    assert book.lookup(NET_B, "10.2.0.4", "database") is None
    assert book.lookup(NET_A, "10.1.0.2", "db") == ["10.1.0.3"]
    book.remove("c2")
    assert book.lookup(NET_A, "10.1.0.2", "db") is None
    assert book.who(NET_A, "10.1.0.3") is None


def test_upstreams_per_asker() -> None:
    book = _book()
    book.configure("c2", upstreams=[("9.9.9.9", 53)], forwards=True)
    assert book.upstreams(NET_A, "10.1.0.2") == []  # the host's
    assert book.upstreams(NET_A, "10.1.0.3") == [("9.9.9.9", 53)]
    assert book.upstreams(NET_B, "10.2.0.4") is None  # only on internal networks


def test_parse_upstream() -> None:
    assert parse_upstream("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_upstream("[::1]:5300") == ("::1", 5300)
    assert parse_upstream("fd00::1") == ("fd00::1", 53)


async def _fake_upstream(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A tiny authoritative server on 127.0.0.1 answering every A query with 192.0.2.99."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.bind(("127.0.0.1", 0))
        task_status.started(sock.getsockname()[1])
        while True:
            data, peer = await sock.recvfrom(65535)
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", "A",
                                                              ["192.0.2.99"]))
            await sock.sendto(reply.to_wire(), peer)


@pytest.fixture
async def server(nursery: trio.Nursery) -> tuple[DNSServer, int]:
    upstream_port = await nursery.start(_fake_upstream)
    resolvers = HostResolvers(override=[("127.0.0.1", upstream_port)])
    dns_server = DNSServer(_book(), resolvers)
    sockets = await dns_server.bind("127.0.0.1", 0)
    port = sockets.udp.getsockname()[1]
    nursery.start_soon(dns_server.serve_bound, NET_A, sockets)
    return dns_server, port


async def _ask_udp(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(query.to_wire())
        with trio.fail_after(5):
            data = await sock.recv(65535)
    return dns.message.from_wire(data)


async def _ask_tcp(port: int, name: str) -> dns.message.Message:
    wire = dns.message.make_query(name, "A").to_wire()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(struct.pack("!H", len(wire)) + wire)
        buffer = b""
        with trio.fail_after(5):
            while len(buffer) < 2 or len(buffer) < 2 + struct.unpack("!H", buffer[:2])[0]:
                buffer += await stream.receive_some(65535)
    return dns.message.from_wire(buffer[2:])


def _addresses(reply: dns.message.Message) -> list[str]:
    return [r.address for rrset in reply.answer for r in rrset]  # type: ignore[attr-defined]


async def test_answers_container_names_over_udp(server: tuple[DNSServer, int]) -> None:
    _, port = server
    reply = await _ask_udp(port, "frontend")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert _addresses(reply) == ["10.1.0.2"]
    assert reply.answer[0].ttl == 600


async def test_aaaa_for_a_known_name_is_empty(server: tuple[DNSServer, int]) -> None:
    _, port = server
    reply = await _ask_udp(port, "web", "AAAA")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer == []


async def test_aaaa_and_a_for_a_container_with_ipv6(server: tuple[DNSServer, int]) -> None:
    dns_server, _ = server
    for rdtype, expected in (("AAAA", ["2001:db8:2::4"]), ("A", ["10.2.0.4"])):
        query = dns.message.make_query("cache", rdtype)
        wire = await dns_server.answer(NET_B, "10.2.0.3", query.to_wire(), tcp=False)
        assert wire is not None
        assert _addresses(dns.message.from_wire(wire)) == expected
    query = dns.message.make_query("4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.8.b.d.0.1.0.0.2"
                                   ".ip6.arpa", "PTR")
    wire = await dns_server.answer(NET_B, "10.2.0.3", query.to_wire(), tcp=False)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ["cache."]


async def test_ptr_for_a_container_address(server: tuple[DNSServer, int]) -> None:
    _, port = server
    reply = await _ask_udp(port, "2.0.1.10.in-addr.arpa", "PTR")
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ["web."]


async def test_other_names_are_forwarded(server: tuple[DNSServer, int]) -> None:
    _, port = server
    reply = await _ask_udp(port, "example.test")
    assert _addresses(reply) == ["192.0.2.99"]


async def test_tcp_answers(server: tuple[DNSServer, int]) -> None:
    _, port = server
    assert _addresses(await _ask_tcp(port, "db")) == ["10.1.0.3"]


async def test_servfail_when_no_upstream_answers() -> None:
    dead = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with dead:
        await dead.bind(("127.0.0.1", 0))  # bound, never answers
        server = DNSServer(NameBook(), HostResolvers(override=[dead.getsockname()]))
        query = dns.message.make_query("example.test", "A")
        import engine.networks.dns as module

        original = module.UPSTREAM_TIMEOUT
        module.UPSTREAM_TIMEOUT = 0.2
        try:
            wire = await server.answer(NET_A, "10.1.0.9", query.to_wire(), tcp=False)
        finally:
            module.UPSTREAM_TIMEOUT = original
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL


async def test_internal_only_containers_are_not_forwarded() -> None:
    server = DNSServer(_book(), HostResolvers(override=[]))
    query = dns.message.make_query("example.test", "A")
    wire = await server.answer(NET_B, "10.2.0.4", query.to_wire(), tcp=False)
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.REFUSED


async def test_garbage_gets_formerr_or_nothing() -> None:
    server = DNSServer(NameBook(), HostResolvers(override=[]))
    assert await server.answer(NET_A, "10.0.0.1", b"\x00", tcp=False) is None
    reply = await server.answer(NET_A, "10.0.0.1", b"\x12\x34\x01\x00" + b"\xff" * 12, tcp=False)
    assert reply is not None
    assert reply[:2] == b"\x12\x34"
    assert reply[3] & 0x0F == dns.rcode.FORMERR
