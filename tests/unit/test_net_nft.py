"""The bridge driver's nftables table: rendered from state, checked by nft itself."""

from __future__ import annotations

import ipaddress

import pytest

from network_drivers import nft
from network_drivers.bridge import BridgeDriver, bridge_mac
from plugins.network_contract import PublishedPort

N = ipaddress.IPv4Network
N6 = ipaddress.IPv6Network


def _ruleset() -> str:
    return nft.render_table(
        "mtest",
        [nft.BridgeRules("mtest0", N("10.99.0.0/24")),
         nft.BridgeRules("mtest-ab", N("10.99.1.0/24"), internal=True),
         nft.BridgeRules("mtest-cd", N("10.99.2.0/24"), masquerade=False)],
        [PublishedPort("tcp", "0.0.0.0", 8080, "10.99.0.2", 80),
         PublishedPort("udp", "127.0.0.1", 5353, "10.99.0.2", 53)],
        prefix="mtest")


def test_the_table_replaces_itself_atomically() -> None:
    lines = _ruleset().splitlines()
    assert lines[:3] == ["table ip mtest", "delete table ip mtest", "table ip mtest {"]
    assert lines.count("table ip mtest {") == 1


def test_published_ports_are_dnat_from_prerouting_and_output() -> None:
    text = _ruleset()
    assert "type nat hook output priority -100; policy accept;" in text
    assert "type nat hook prerouting priority -100; policy accept;" in text
    assert text.count("fib daddr type local jump published") == 2
    assert "    tcp dport 8080 dnat to 10.99.0.2:80" in text
    assert "    ip daddr 127.0.0.1 udp dport 5353 dnat to 10.99.0.2:53" in text


def test_masquerade_loopback_hairpin_and_outbound() -> None:
    text = _ruleset()
    assert 'ip saddr 127.0.0.0/8 oifname "mtest0" masquerade' in text
    assert 'ip saddr 10.99.0.0/24 oifname "mtest0" ct status dnat masquerade' in text
    assert 'ip saddr 10.99.0.0/24 oifname != "mtest0" masquerade' in text
    # internal networks and enable_ip_masquerade=false: no outbound masquerading
    assert 'ip saddr 10.99.1.0/24 oifname != "mtest-ab" masquerade' not in text
    assert 'ip saddr 10.99.2.0/24 oifname != "mtest-cd" masquerade' not in text


def test_isolation_and_the_loopback_guard() -> None:
    text = _ruleset()
    assert 'iifname "mtest-ab" oifname != "mtest-ab" drop' in text
    assert 'oifname "mtest-ab" iifname != "mtest-ab" drop' in text
    assert 'iifname "mtest0" oifname "mtest*" oifname != "mtest0" drop' in text
    assert 'iifname "mtest0" ip daddr 127.0.0.0/8 drop' in text
    assert text.index("ct status dnat accept") < text.index('iifname "mtest0" oifname "mtest*"')


def test_no_networks_only_deletes() -> None:
    assert nft.render_table("mtest", [], [], prefix="mtest") == (
        "table ip mtest\ndelete table ip mtest\ntable ip6 mtest\ndelete table ip6 mtest\n")


def _ruleset6() -> str:
    return nft.render_table(
        "mtest",
        [nft.BridgeRules("mtest0", N("10.99.0.0/24")),
         nft.BridgeRules("mtest-ab", N("10.99.1.0/24"), subnet6=N6("fd00:99:1::/64")),
         nft.BridgeRules("mtest-cd", N("10.99.2.0/24"), internal=True,
                         subnet6=N6("fd00:99:2::/64"))],
        [PublishedPort("tcp", "0.0.0.0", 8080, "10.99.1.2", 80),
         PublishedPort("tcp", "::", 8080, "fd00:99:1::2", 80),
         PublishedPort("udp", "fd00::5", 5353, "fd00:99:1::2", 53),
         PublishedPort("tcp", "::1", 8081, "fd00:99:1::2", 81)],
        prefix="mtest")


def test_ipv6_networks_get_an_ip6_table() -> None:
    text = _ruleset6()
    v4, v6 = text.split("table ip6 mtest\n", 1)
    assert "ip6" not in v4
    assert "fd00" not in v4
    assert "    tcp dport 8080 dnat to 10.99.1.2:80" in v4
    assert v6.startswith("delete table ip6 mtest\ntable ip6 mtest {")
    assert "    tcp dport 8080 dnat to [fd00:99:1::2]:80" in v6
    assert "    ip6 daddr fd00::5 udp dport 5353 dnat to [fd00:99:1::2]:53" in v6
    # ::1 can't be DNATed: moord forwards it, so the rules leave it alone
    assert "8081" not in text
    assert "    ip6 daddr != ::1 fib daddr type local jump published" in v6
    assert 'ip6 saddr fd00:99:1::/64 oifname != "mtest-ab" masquerade' in v6
    assert 'ip6 saddr fd00:99:1::/64 oifname "mtest-ab" ct status dnat masquerade' in v6
    assert 'ip6 saddr fd00:99:2::/64 oifname != "mtest-cd" masquerade' not in v6
    assert 'iifname "mtest-cd" oifname != "mtest-cd" drop' in v6
    assert '"mtest0"' not in v6  # an IPv4-only network has no part in the ip6 table


@pytest.mark.needs_root("nft -c needs root")
@pytest.mark.needs_tools("nft")
async def test_nft_accepts_the_ipv6_ruleset() -> None:
    await nft.apply(_ruleset6(), check_only=True)


def test_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unsafe"):
        nft.render_table("bad name", [], [], prefix="x")
    with pytest.raises(ValueError, match="unsafe"):
        nft.render_table("t", [nft.BridgeRules('x"; flush ruleset', N("10.0.0.0/24"))], [],
                         prefix="t")


@pytest.mark.needs_root("nft -c needs root")
@pytest.mark.needs_tools("nft")
async def test_nft_accepts_the_ruleset() -> None:
    await nft.apply(_ruleset(), check_only=True)


def test_bridge_driver_names_fit_linux_limits() -> None:
    driver = BridgeDriver(prefix="mtest12")
    from plugins.network_contract import Endpoint, NetworkConfig

    config = NetworkConfig(id="ab" * 32, name="n")
    assert driver.bridge_name(config) == "mtest12-abababa"
    assert len(driver.bridge_name(config)) <= 15
    endpoint = Endpoint(id="cd" * 32, container_id="ef" * 32, netns="/x", ifname="eth0")
    assert driver.host_link_name(endpoint) == "mtest12cdcdcdcd"
    assert bridge_mac("ab" * 32).startswith("02:")
