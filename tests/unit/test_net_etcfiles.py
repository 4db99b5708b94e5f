"""A container's /etc/hosts and /etc/resolv.conf for each network mode."""

from __future__ import annotations

from engine.networks import etcfiles
from engine.networks.etcfiles import LOCALHOST_HOSTS, ResolvConf

HOST = ResolvConf.parse("# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                        "search corp.example\noptions edns0 trust-ad\n")


def test_parse_keeps_what_matters() -> None:
    assert HOST.nameservers == ("127.0.0.53", "10.0.0.2")
    assert HOST.search == ("corp.example",)
    assert HOST.options == ("edns0", "trust-ad")


def test_network_mode_names_moords_dns_and_ndots0() -> None:
    text = etcfiles.resolv_conf(mode="network", host=HOST, nameservers=["172.18.0.1", "172.19.0.1"],
                                dns=["9.9.9.9"])
    assert text == ("nameserver 172.18.0.1\nnameserver 172.19.0.1\nsearch corp.example\n"
                    "options edns0 trust-ad ndots:0\n")
    custom = etcfiles.resolv_conf(mode="network", host=HOST, nameservers=["172.18.0.1"],
                                  dns_search=["a.test"], dns_options=["ndots:2"])
    assert custom == "nameserver 172.18.0.1\nsearch a.test\noptions ndots:2\n"


def test_none_mode_drops_loopback_resolvers() -> None:
    assert etcfiles.resolv_conf(mode="none", host=HOST) == \
        "nameserver 10.0.0.2\nsearch corp.example\noptions edns0 trust-ad\n"
    assert etcfiles.resolv_conf(mode="none", host=HOST, dns=["1.1.1.1"], dns_search=["."]) == \
        "nameserver 1.1.1.1\noptions edns0 trust-ad\n"


def test_host_mode_keeps_the_hosts_resolvers() -> None:
    assert etcfiles.resolv_conf(mode="host", host=HOST).startswith(
        "nameserver 127.0.0.53\nnameserver 10.0.0.2\n")


def test_hosts_file_for_a_network_container() -> None:
    text = etcfiles.hosts_file(mode="network", hostname="web", domainname="example.test",
                               addresses=["172.18.0.2"],
                               extra_hosts=["db:10.0.0.5", "gw:host-gateway", "v6=[fd00::1]"],
                               host_gateway="172.18.0.1")
    assert text == (LOCALHOST_HOSTS + "10.0.0.5\tdb\n172.18.0.1\tgw\nfd00::1\tv6\n"
                    "172.18.0.2\tweb.example.test web\n")


def test_hosts_file_host_mode_starts_from_the_hosts() -> None:
    text = etcfiles.hosts_file(mode="host", hostname="ignored", host_hosts="127.0.0.1 localhost",
                               extra_hosts=["x:1.2.3.4"])
    assert text == "127.0.0.1 localhost\n1.2.3.4\tx\n"


def test_extra_host_validation() -> None:
    assert etcfiles.validate_extra_host("a:1.2.3.4") is None
    assert etcfiles.validate_extra_host("a:host-gateway") is None
    assert etcfiles.validate_extra_host("a") == 'bad format for add-host: "a"'
    assert etcfiles.validate_extra_host("a:nowhere") == 'invalid IP address in add-host: "nowhere"'
