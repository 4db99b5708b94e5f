"""IPAM: default pools avoiding what the host uses, Docker's subnet rules, address pools."""

from __future__ import annotations

import ipaddress

import pytest

from engine.errors import Forbidden, InvalidParameter, SystemFailure
from engine.networks import ipam
from engine.networks.model import IPAMConfig

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address
N6 = ipaddress.IPv6Network
A6 = ipaddress.IPv6Address


def test_default_pools_are_dockers() -> None:
    pools = ipam.default_pools()
    assert pools[0] == N("172.17.0.0/16")
    assert pools[14] == N("172.31.0.0/16")
    assert pools[15] == N("192.168.0.0/20")
    assert pools[-1] == N("192.168.240.0/20")


def test_pick_subnet_skips_the_default_bridge_and_what_is_taken() -> None:
    assert ipam.pick_subnet([]) == N("172.18.0.0/16")
    assert ipam.pick_subnet([], skip_default=False) == N("172.17.0.0/16")
    # a host route inside a pool makes the whole pool unusable
    assert ipam.pick_subnet([N("172.18.5.0/24")]) == N("172.19.0.0/16")
    # a wide host route covering several pools
    assert ipam.pick_subnet([N("172.16.0.0/12")]) == N("192.168.0.0/20")
    everything = [N("172.16.0.0/12"), N("192.168.0.0/16")]
    with pytest.raises(Forbidden, match="non-overlapping IPv4 address pool"):
        ipam.pick_subnet(everything)


def test_validate_config_fills_the_gateway() -> None:
    config = ipam.validate_config(IPAMConfig(subnet="10.10.0.0/24"))
    assert config.gateway == "10.10.0.1"
    given = ipam.validate_config(IPAMConfig(subnet="10.10.0.0/24", gateway="10.10.0.254",
                                            ip_range="10.10.0.128/25"))
    assert given.gateway == "10.10.0.254"


@pytest.mark.parametrize(("config", "message"), [
    (IPAMConfig(subnet="10.10.0.5/24"), "it should be 10.10.0.0/24"),
    (IPAMConfig(subnet="nonsense"), "invalid subnet"),
    (IPAMConfig(subnet="fd00::5/64"), "it should be fd00::/64"),
    (IPAMConfig(subnet="fd00::/64", gateway="10.10.0.1"), "parent subnet is an IPv6 block"),
    (IPAMConfig(subnet="10.10.0.0/24", ip_range="fd00::/80"), "parent subnet is an IPv4 block"),
    (IPAMConfig(subnet="fd00::/64", gateway="fd00::"), "not a host address"),
    (IPAMConfig(subnet="fd00::/64", gateway="fd01::1"), "not a host address"),
    (IPAMConfig(subnet="fd00::/64", ip_range="fd01::/96"), "not within the subnet"),
    (IPAMConfig(subnet="fd00::/127"), "too small"),
    (IPAMConfig(subnet="10.10.0.0/24", gateway="10.20.0.1"), "not a host address"),
    (IPAMConfig(subnet="10.10.0.0/24", gateway="10.10.0.255"), "not a host address"),
    (IPAMConfig(subnet="10.10.0.0/24", ip_range="10.20.0.0/25"), "not within the subnet"),
    (IPAMConfig(subnet="10.10.0.0/24", aux_addresses={"r": "10.9.0.1"}), "not in the subnet"),
    (IPAMConfig(gateway="10.10.0.1"), "needs a subnet"),
    (IPAMConfig(subnet="10.10.0.0/31"), "too small"),
])
def test_validate_config_refuses(config: IPAMConfig, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        ipam.validate_config(config)


def test_pool_hands_out_lowest_free_skipping_reserved() -> None:
    pool = ipam.AddressPool.of(IPAMConfig(subnet="10.1.0.0/29", gateway="10.1.0.1",
                                          aux_addresses={"router": "10.1.0.2"}))
    assert pool.allocate("a") == A("10.1.0.3")
    assert pool.allocate("b") == A("10.1.0.4")
    pool.release("a")
    assert pool.allocate("c") == A("10.1.0.3")
    assert pool.allocate("d") == A("10.1.0.5")
    assert pool.allocate("e") == A("10.1.0.6")
    with pytest.raises(SystemFailure, match="no available IPv4 addresses"):
        pool.allocate("f")


def test_pool_prefers_the_previous_address_and_honours_the_range() -> None:
    pool = ipam.AddressPool.of(IPAMConfig(subnet="10.1.0.0/24", gateway="10.1.0.1",
                                          ip_range="10.1.0.128/25"))
    assert pool.allocate("a") == A("10.1.0.129")
    assert pool.allocate("b", preferred=A("10.1.0.200")) == A("10.1.0.200")
    # a preferred address outside the range, or taken, is ignored
    assert pool.allocate("c", preferred=A("10.1.0.200")) == A("10.1.0.130")
    assert pool.allocate("d", preferred=A("10.1.0.5")) == A("10.1.0.131")


def test_static_addresses() -> None:
    pool = ipam.AddressPool.of(IPAMConfig(subnet="10.1.0.0/24", gateway="10.1.0.1",
                                          ip_range="10.1.0.128/25"))
    pool.take(A("10.1.0.5"), "a")  # outside the ip-range but in the subnet: allowed
    pool.take(A("10.1.0.5"), "a")  # the same owner again: fine (restore)
    with pytest.raises(InvalidParameter, match="Address already in use"):
        pool.take(A("10.1.0.5"), "b")
    with pytest.raises(InvalidParameter, match="Address already in use"):
        pool.take(A("10.1.0.1"), "b")  # the gateway
    with pytest.raises(InvalidParameter, match="does not belong"):
        pool.take(A("10.2.0.5"), "b")


def test_mac_follows_the_address() -> None:
    assert ipam.mac_for(A("172.17.0.2")) == "02:42:ac:11:00:02"
    assert ipam.valid_mac("02:42:ac:11:00:02")
    assert not ipam.valid_mac("02:42:ac:11:00")
    assert not ipam.valid_mac("zz:42:ac:11:00:02")


def test_ipv6_config_and_pool() -> None:
    config = ipam.validate_config(IPAMConfig(subnet="2001:db8:1::/64"))
    assert config.gateway == "2001:db8:1::1"
    pool = ipam.AddressPool.of(IPAMConfig(subnet="2001:db8:1::/64", gateway="2001:db8:1::ffff",
                                          ip_range="2001:db8:1::/96",
                                          aux_addresses={"r": "2001:db8:1::1"}))
    assert pool.version == 6
    assert pool.allocate("a") == A6("2001:db8:1::2")  # ::1 is an aux address, :: the subnet's
    assert str(pool.interface(A6("2001:db8:1::2"))) == "2001:db8:1::2/64"
    pool.take(A6("2001:db8:1::f00d"), "b")
    with pytest.raises(InvalidParameter, match="Address already in use"):
        pool.take(A6("2001:db8:1::ffff"), "c")  # the gateway
    with pytest.raises(InvalidParameter, match="does not belong"):
        pool.take(A6("2001:db8:2::1"), "c")
    # an IPv6 subnet has no broadcast address: the last one is a host's
    small = ipam.AddressPool.of(IPAMConfig(subnet="fd00::/126"))
    assert [small.allocate("x"), small.allocate("y")] == [A6("fd00::2"), A6("fd00::3")]
    with pytest.raises(SystemFailure, match="no available IPv6 addresses"):
        small.allocate("z")


def test_unique_local_subnets() -> None:
    base = ipam.ula_base("machine/moorage")
    assert base.prefixlen == 48
    assert base.subnet_of(N6("fd00::/8"))
    assert base == ipam.ula_base("machine/moorage")  # stable
    assert base != ipam.ula_base("machine/other")
    first = ipam.pick_subnet6([], base=base)
    assert first.prefixlen == 64
    assert first.network_address == base.network_address
    second = ipam.pick_subnet6([first, N("172.18.0.0/16")], base=base)
    assert second != first
    assert second.subnet_of(base)
    with pytest.raises(Forbidden, match="IPv6 address pool"):
        ipam.pick_subnet6([base], base=base)
