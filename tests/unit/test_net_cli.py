"""`moor`'s network flags and commands, without a daemon: create bodies, `port` lines,
`network create`'s grouping of --subnet/--gateway/--ip-range/--aux-address."""

from __future__ import annotations

import pytest

from engine.cli.netflags import NetworkFlags, port_lines
from engine.cli.networks import ipam_configs
from engine.cli.options import ContainerOptions, OptionError


def test_flags_go_into_the_create_body() -> None:
    flags = NetworkFlags.from_params({
        "publish": ("127.0.0.1:8080:80", "53/udp"), "publish_all": True,
        "network_aliases": ("web",), "ip": "10.1.0.5", "dns": ("1.1.1.1",),
        "dns_search": ("corp.test",), "dns_options": ("ndots:2",), "add_hosts": ("db:10.0.0.9",),
    })
    body = ContainerOptions(image="busybox", network="apps", network_flags=flags).create_body()
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    host = body["HostConfig"]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                    "53/udp": [{"HostIp": "", "HostPort": ""}]}
    assert host["PublishAllPorts"] is True
    assert host["Dns"] == ["1.1.1.1"]
    assert host["DnsSearch"] == ["corp.test"]
    assert host["DnsOptions"] == ["ndots:2"]
    assert host["ExtraHosts"] == ["db:10.0.0.9"]
    assert body["NetworkingConfig"]["EndpointsConfig"] == {
        "apps": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}


def test_ipv6_and_link_local_flags() -> None:
    flags = NetworkFlags.from_params({"ip6": "2001:db8::33", "link_local_ips": ("169.254.1.1",)})
    body = ContainerOptions(image="busybox", network="apps", network_flags=flags).create_body()
    assert body["NetworkingConfig"]["EndpointsConfig"] == {
        "apps": {"IPAMConfig": {"IPv6Address": "2001:db8::33", "LinkLocalIPs": ["169.254.1.1"]}}}


def test_alias_without_network_goes_to_default() -> None:
    flags = NetworkFlags.from_params({"network_aliases": ("x",)})
    body = ContainerOptions(image="busybox", network_flags=flags).create_body()
    assert body["NetworkingConfig"]["EndpointsConfig"] == {"default": {"Aliases": ["x"]}}


@pytest.mark.parametrize(("params", "message"), [
    ({"publish": ("abc",)}, "invalid containerPort: abc"),
    ({"ip": "10.1"}, 'invalid argument "10.1" for "--ip" flag'),
    ({"ip6": "10.1.0.1"}, 'invalid argument "10.1.0.1" for "--ip6" flag'),
    ({"link_local_ips": ("x",)}, 'invalid argument "x" for "--link-local-ip" flag'),
    ({"dns": ("dns.example",)}, 'invalid argument "dns.example" for "--dns" flag'),
    ({"add_hosts": ("justaname",)}, 'bad format for add-host: "justaname"'),
])
def test_flag_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        NetworkFlags.from_params(params)


def test_port_lines_like_docker_port() -> None:
    ports = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}], "443/tcp": None,
             "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]}
    assert port_lines(ports) == ["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:32768"]
    assert port_lines(ports, "80") == ["0.0.0.0:32768"]
    assert port_lines(ports, "53/udp") == ["127.0.0.1:5353"]
    assert port_lines(ports, "443") == []
    both = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}]}
    assert port_lines(both) == ["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]


def test_ipam_configs_group_by_subnet() -> None:
    assert ipam_configs(["10.1.0.0/16", "10.2.0.0/16"], ["10.2.0.254"], ["10.1.5.0/24"],
                        {"router": "10.1.0.2"}) == [
        {"Subnet": "10.1.0.0/16", "IPRange": "10.1.5.0/24", "AuxiliaryAddresses": {"router": "10.1.0.2"}},
        {"Subnet": "10.2.0.0/16", "Gateway": "10.2.0.254"},
    ]
    with pytest.raises(OptionError, match="no matching subnet for gateway"):
        ipam_configs(["10.1.0.0/16"], ["10.3.0.1"], [], {})
    with pytest.raises(OptionError, match="cannot configure multiple ranges"):
        ipam_configs(["10.1.0.0/16"], [], ["10.1.1.0/24", "10.1.2.0/24"], {})
