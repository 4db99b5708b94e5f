"""Legacy links as text (`name:alias`, the variables, the hosts line), link aliases in the
DNS name book, the network-mode refusals Docker makes at create, and the container-wide
MAC address's migration to the main endpoint (by API version)."""

from __future__ import annotations

import pytest

from engine.api.wire.networks import MAC_DEPRECATED, migrate_container_mac
from engine.errors import InvalidParameter
from engine.networks.dns import NameBook
from engine.networks.linkspec import (
    LinkFormatError,
    hosts_line,
    is_user_defined,
    link_env,
    link_name,
    parse_link,
)
from engine.networks.model import EndpointRequest
from engine.networks.validation import check_network_mode


def test_link_values_as_docker_reads_them() -> None:
    assert parse_link("db") == ("db", "db")
    assert parse_link("web:db") == ("web", "db")
    # what inspect shows comes back as it was given
    assert parse_link("/web:/app/db") == ("web", "db")
    with pytest.raises(LinkFormatError, match=r"^empty string specified for links$"):
        parse_link("")
    with pytest.raises(LinkFormatError, match=r"^bad format for links: a:b:c$"):
        parse_link("a:b:c")
    assert link_name("app", "db") == "/app/db"


def test_link_variables_in_dockers_order() -> None:
    env = link_env("/app/my-db", "172.17.0.2", ["FOO=1", "HOME=/root", "PATH=/bin", "BARE"],
                   ["81/tcp", "53/udp", "80/tcp", "90/tcp"])
    assert env == [
        "MY_DB_PORT=tcp://172.17.0.2:80",
        "MY_DB_PORT_80_TCP=tcp://172.17.0.2:80",
        "MY_DB_PORT_80_TCP_ADDR=172.17.0.2",
        "MY_DB_PORT_80_TCP_PORT=80",
        "MY_DB_PORT_80_TCP_PROTO=tcp",
        "MY_DB_PORT_81_TCP=tcp://172.17.0.2:81",
        "MY_DB_PORT_81_TCP_ADDR=172.17.0.2",
        "MY_DB_PORT_81_TCP_PORT=81",
        "MY_DB_PORT_81_TCP_PROTO=tcp",
        # 80-81 is a run: announced once the next port is not part of it
        "MY_DB_PORT_90_TCP=tcp://172.17.0.2:90",
        "MY_DB_PORT_90_TCP_ADDR=172.17.0.2",
        "MY_DB_PORT_90_TCP_PORT=90",
        "MY_DB_PORT_90_TCP_PROTO=tcp",
        "MY_DB_PORT_80_TCP_START=tcp://172.17.0.2:80",
        "MY_DB_PORT_80_TCP_PORT_START=80",
        "MY_DB_PORT_80_TCP_END=tcp://172.17.0.2:81",
        "MY_DB_PORT_80_TCP_PORT_END=81",
        "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
        "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
        "MY_DB_PORT_53_UDP_PORT=53",
        "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_NAME=/app/my-db",
        "MY_DB_ENV_FOO=1",
    ]


def test_link_variables_without_ports_and_a_range_at_the_end() -> None:
    assert link_env("/a/x", "10.0.0.2", [], []) == ["X_NAME=/a/x"]
    env = link_env("/a/x", "10.0.0.2", [], ["8000-8001/tcp"])
    assert env[-5:] == ["X_PORT_8000_TCP_START=tcp://10.0.0.2:8000",
                        "X_PORT_8000_TCP_PORT_START=8000",
                        "X_PORT_8000_TCP_END=tcp://10.0.0.2:8001",
                        "X_PORT_8000_TCP_PORT_END=8001", "X_NAME=/a/x"]


def test_the_hosts_line_names_alias_hostname_and_name() -> None:
    assert hosts_line("10.0.0.2", "db", "web", "abc123") == "10.0.0.2\tdb abc123 web\n"
    assert hosts_line("10.0.0.2", "web", "web", "abc123") == "10.0.0.2\tweb abc123\n"


def test_network_modes_by_their_text() -> None:
    for mode in ("", "default", "bridge", "host", "none", "container:x", "container"):
        assert not is_user_defined(mode)
    assert is_user_defined("mynet")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"network_mode": "container:"}, "invalid container format container:<name|id>"),
    ({"network_mode": "container:x", "hostname": "h"}, "hostname and the network mode"),
    ({"network_mode": "container:x", "links": ["a"]}, "container type network can't be used"),
    ({"network_mode": "container:x", "dns": ["1.1.1.1"]}, "dns and the network mode"),
    ({"network_mode": "container:x", "extra_hosts": ["a:1.2.3.4"]}, "host-to-IP mapping"),
    ({"network_mode": "container:x", "publish_all": True}, "port publishing"),
    ({"network_mode": "container:x", "port_bindings": {"80/tcp": []}}, "port publishing"),
    ({"network_mode": "container:x", "exposed_ports": ["80/tcp"]}, "port exposing"),
    ({"network_mode": "host", "links": ["a"]}, "host type networking can't be used with links"),
])
def test_network_mode_conflicts(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidParameter, match=words.replace("(", r"\(").replace("|", r"\|")):
        check_network_mode(**kwargs)  # type: ignore[arg-type]


def test_what_network_modes_allow() -> None:
    check_network_mode("container:x")
    check_network_mode("bridge", hostname="h", links=["a"], exposed_ports=["80/tcp"])


def test_link_aliases_resolve_for_their_container_on_their_network() -> None:
    book = NameBook()
    book.add("web", "net", "10.0.0.2", ["web"])
    book.add("app", "net", "10.0.0.3", ["app"], {"db": "web"})
    book.add("other", "net", "10.0.0.4", ["other"])
    assert book.lookup("net", "10.0.0.3", "DB.") == ["10.0.0.2"]
    assert book.lookup("net", "10.0.0.4", "db") is None  # only the linking container
    book.remove("app", "net")
    book.add("app", "net", "10.0.0.3", ["app"])
    assert book.lookup("net", "10.0.0.3", "db") is None


def test_the_container_wide_mac_moves_to_the_main_endpoint() -> None:
    endpoints: dict[str, EndpointRequest] = {}
    assert migrate_container_mac("02:42:ac:11:00:0a", "default", endpoints, "1.45") == \
        MAC_DEPRECATED
    assert endpoints == {"default": EndpointRequest(mac_address="02:42:ac:11:00:0a")}
    endpoints = {"mynet": EndpointRequest(aliases=("a",))}
    migrate_container_mac("02:42:ac:11:00:0a", "mynet", endpoints, "1.45")
    assert endpoints["mynet"] == EndpointRequest(aliases=("a",), mac_address="02:42:ac:11:00:0a")
    # no network of its own: dropped with the warning
    endpoints = {}
    assert migrate_container_mac("02:42:ac:11:00:0a", "host", endpoints, "1.45") == MAC_DEPRECATED
    assert endpoints == {}
    with pytest.raises(InvalidParameter, match="must match the endpoint-specific MAC address"):
        migrate_container_mac("02:42:ac:11:00:0a", "bridge",
                              {"bridge": EndpointRequest(mac_address="02:42:ac:11:00:0b")}, "1.45")
    with pytest.raises(InvalidParameter, match="NetworkMode must match the identity of a network"):
        migrate_container_mac("02:42:ac:11:00:0a", "mynet", {"other": EndpointRequest()}, "1.45")


def test_before_api_1_44_the_container_wide_mac_is_the_only_one() -> None:
    endpoints = {"bridge": EndpointRequest(mac_address="02:42:ac:11:00:0b")}
    assert migrate_container_mac("", "bridge", endpoints, "1.43") == ""
    assert endpoints["bridge"].mac_address == ""
    endpoints = {"mynet": EndpointRequest()}
    assert migrate_container_mac("02:42:ac:11:00:0a", "bridge", endpoints, "1.41") == ""
    assert endpoints["mynet"].mac_address == "02:42:ac:11:00:0a"
    with pytest.raises(InvalidParameter, match=r"^conflicting options: mac-address and the network"):
        migrate_container_mac("02:42:ac:11:00:0a", "container:x", {}, "1.43")
