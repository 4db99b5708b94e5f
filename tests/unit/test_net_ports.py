"""Published ports: the docker CLI's `-p` grammar and messages, the daemon's reading of
PortBindings, and the host port allocator with real binds on loopback."""

from __future__ import annotations

import socket

import pytest

from engine.errors import InvalidParameter
from engine.networks.model import PortRequest
from engine.networks.ports import (
    PortAllocationError,
    PortAllocator,
    PortSpecError,
    PublishSpec,
    bindings_for,
    parse_publish,
    requests_from_bindings,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("80", [PublishSpec("80/tcp", "", "")]),
    ("8080:80", [PublishSpec("80/tcp", "", "8080")]),
    ("127.0.0.1:8080:80", [PublishSpec("80/tcp", "127.0.0.1", "8080")]),
    ("127.0.0.1::80", [PublishSpec("80/tcp", "127.0.0.1", "")]),
    ("53:53/udp", [PublishSpec("53/udp", "", "53")]),
    ("80/TCP", [PublishSpec("80/tcp", "", "")]),
    ("[::1]:8080:80", [PublishSpec("80/tcp", "::1", "8080")]),
    ("8000-8001:80-81", [PublishSpec("80/tcp", "", "8000"), PublishSpec("81/tcp", "", "8001")]),
    ("8000-8010:80", [PublishSpec("80/tcp", "", "8000-8010")]),
    ("80-81", [PublishSpec("80/tcp", "", ""), PublishSpec("81/tcp", "", "")]),
])
def test_parse_publish(raw: str, expected: list[PublishSpec]) -> None:
    assert parse_publish(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ("abc", "invalid containerPort: abc"),
    ("8080:abc", "invalid containerPort: abc"),
    ("x:80", "invalid hostPort: x"),
    ("999999:80", "invalid hostPort: 999999"),
    ("1.2.3:8080:80", "invalid IP address: 1.2.3"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("80/icmp", "invalid proto: icmp"),
    ("8080:", "no port specified: 8080:<empty>"),
])
def test_parse_publish_errors(raw: str, message: str) -> None:
    with pytest.raises(PortSpecError) as info:
        parse_publish(raw)
    assert str(info.value) == message


def test_bindings_for_makes_the_create_body_parts() -> None:
    exposed, bindings = bindings_for(["127.0.0.1:8080:80", "9090:80", "53/udp"])
    assert exposed == {"80/tcp": {}, "53/udp": {}}
    assert bindings == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "", "HostPort": "9090"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
    }


def test_requests_from_bindings_and_publish_all() -> None:
    requests = requests_from_bindings(
        {"80/tcp": [("127.0.0.1", "8080")], "443/tcp": [("", "")], "53/udp": [("0.0.0.0", "5300-5310")]},
        publish_all=True, exposed=["80/tcp", "9000/tcp", "7000-7001/udp"])
    assert requests == [
        PortRequest(80, "tcp", "127.0.0.1", 8080, 0),
        PortRequest(443, "tcp", "", 0, 0),
        PortRequest(53, "udp", "", 5300, 5310),
        PortRequest(7000, "udp"),
        PortRequest(7001, "udp"),
        PortRequest(9000, "tcp"),
    ]
    # IPv6 addresses are kept (the start decides what :: means for the container's network)
    assert requests_from_bindings({"80/tcp": [("::", "81"), ("::1", "82")]}) == [
        PortRequest(80, "tcp", "::", 81, 0), PortRequest(80, "tcp", "::1", 82, 0)]


@pytest.mark.parametrize(("bindings", "message"), [
    ({"80/icmp": [("", "")]}, "invalid proto"),
    ({"http/tcp": [("", "")]}, 'invalid port specification: "http"'),
    ({"70000/tcp": [("", "")]}, 'invalid port specification: "70000"'),
    ({"80/tcp": [("", "70000")]}, 'invalid port specification: "70000"'),
    ({"80/tcp": [("", "9000-8000")]}, 'invalid port specification: "9000-8000"'),
    ({"80/tcp": [("nowhere", "")]}, "invalid IP address"),
    ({"80/tcp": [("", "http")]}, 'invalid port specification: "http"'),
    ({"80/sctp": [("", "")]}, "SCTP"),
])
def test_requests_from_bindings_refuse(bindings: dict[str, list[tuple[str, str]]],
                                       message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        requests_from_bindings(bindings)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_allocator_conflicts_use_dockers_words() -> None:
    ports = PortAllocator()
    try:
        port = _free_port()
        assert ports.allocate("a", "tcp", "127.0.0.1", port) == port
        with pytest.raises(PortAllocationError) as info:
            ports.allocate("b", "tcp", "127.0.0.1", port)
        assert str(info.value) == f"Bind for 127.0.0.1:{port} failed: port is already allocated"
        # 0.0.0.0 overlaps every address; another protocol doesn't conflict
        with pytest.raises(PortAllocationError, match="port is already allocated"):
            ports.allocate("b", "tcp", "", port)
        assert ports.allocate("b", "udp", "127.0.0.1", port) == port
        ports.release("a")
        assert ports.allocate("c", "tcp", "", port) == port
        assert ports.owned_by("c") == [("tcp", "0.0.0.0", port)]
    finally:
        ports.close()


def test_allocator_holds_a_real_reservation_and_frees_it() -> None:
    ports = PortAllocator()
    try:
        port = _free_port()
        ports.allocate("a", "tcp", "127.0.0.1", port)
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", port))
        ports.release("a")
        with socket.socket() as other:
            other.bind(("127.0.0.1", port))
    finally:
        ports.close()


def test_allocator_refuses_a_port_the_host_uses() -> None:
    ports = PortAllocator()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        used = listener.getsockname()[1]
        with pytest.raises(PortAllocationError, match="address already in use"):
            ports.allocate("a", "tcp", "127.0.0.1", used)
    assert ports.owned_by("a") == []


def test_ephemeral_ports_skip_what_the_host_uses() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        used = listener.getsockname()[1]
        ports = PortAllocator(ephemeral=(used, used + 50))
        try:
            got = ports.allocate("a", "tcp", "127.0.0.1")
            assert used < got <= used + 50
            again = ports.allocate("b", "tcp", "127.0.0.1")
            assert again != got
        finally:
            ports.close()


def test_a_host_range_takes_the_first_free_port() -> None:
    ports = PortAllocator()
    try:
        start = _free_port()
        ports.allocate("a", "tcp", "127.0.0.1", start)
        got = ports.allocate("b", "tcp", "127.0.0.1", start, start + 20)
        assert start < got <= start + 20
    finally:
        ports.close()


def test_restore_reregisters_without_conflict() -> None:
    ports = PortAllocator()
    try:
        port = _free_port()
        assert ports.restore("a", "tcp", "127.0.0.1", port) is None
        with pytest.raises(PortAllocationError, match="already allocated"):
            ports.allocate("b", "tcp", "127.0.0.1", port)
    finally:
        ports.close()


def _free_dual_port() -> int:
    """A port free on 127.0.0.1 and on ::1."""
    for _ in range(50):
        port = _free_port()
        with socket.socket(socket.AF_INET6) as s6:
            try:
                s6.bind(("::1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free on both loopbacks")


def test_ipv4_and_ipv6_bindings_of_one_port() -> None:
    ports = PortAllocator()
    try:
        port = _free_dual_port()
        # one `-p` on an IPv6 network: the same port on both families, held by real sockets
        assert ports.allocate("a", "tcp", ["127.0.0.1", "::1"], port) == port
        assert ports.owned_by("a") == [("tcp", "127.0.0.1", port), ("tcp", "::1", port)]
        with socket.socket(socket.AF_INET6) as other, pytest.raises(OSError, match="in use"):
            other.bind(("::1", port))
        with pytest.raises(PortAllocationError) as info:
            ports.allocate("b", "tcp", "::", port)  # :: overlaps every IPv6 address
        assert str(info.value) == f"Bind for [::]:{port} failed: port is already allocated"
        ports.release("a")
        # the families don't overlap: :: and 0.0.0.0 are separate bindings
        assert ports.allocate("b", "tcp", "::1", port) == port
        assert ports.allocate("c", "tcp", "127.0.0.1", port) == port
        assert ports.reservation("tcp", "::1", port) is not None
    finally:
        ports.close()


def test_a_pair_is_all_or_nothing() -> None:
    ports = PortAllocator()
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen(1)
        used = listener.getsockname()[1]
        try:
            with pytest.raises(PortAllocationError, match=r"\[::1\]:\d+/tcp: address already in use"):
                ports.allocate("a", "tcp", ["127.0.0.1", "::1"], used)
            assert ports.owned_by("a") == []
            with socket.socket() as v4:  # the IPv4 half was given back
                v4.bind(("127.0.0.1", used))
        finally:
            ports.close()
