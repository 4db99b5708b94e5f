"""IPv6 through the stock docker CLI and the Docker SDK against a real moord: `--ipv6`
networks and their addresses, routes and names (AAAA), fixed addresses (`--ip6`, connect
with `ipv6_address`) and link-local ones, ports published on `[::]` beside `0.0.0.0` and
on `[::1]`, the daemon's `--ipv6`/`--fixed-cidr-v6` for the default bridge, a moord
restart, and the network-create validation dockerd does (names, IPAM entries).

Subnets are random /64s of the documentation prefix 2001:db8::/32; traffic goes only to
loopback and to containers the tests made.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.test_networks import HTTPD, containers, http_get, network, unique
from tests.support.daemon import Moord, inspect

pytestmark = pytest.mark.integration


def v6_subnet() -> str:
    return f"2001:db8:{secrets.randbelow(0xfff0) + 1:x}::/64"


def free_dual_port() -> int:
    """A port free on both 0.0.0.0 and [::]."""
    for _ in range(50):
        with socket.socket() as s4:
            s4.bind(("0.0.0.0", 0))
            port = int(s4.getsockname()[1])
            with socket.socket(socket.AF_INET6) as s6:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s6.bind(("::", port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free on both IPv4 and IPv6")


def endpoint(d: Moord, container: str, net: str) -> dict[str, Any]:
    settings = inspect(d, container)["NetworkSettings"]
    assert isinstance(settings, dict)
    found = settings["Networks"][net]
    assert isinstance(found, dict)
    return found


def closed(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except OSError:
        return True
    return False


# --- networks, addresses, routes, names ------------------------------------------------------


def test_ipv6_network_addresses_routes_and_names(moord: Moord) -> None:
    subnet = v6_subnet()
    net6 = ipaddress.IPv6Network(subnet)
    gateway = str(net6.network_address + 1)
    with network(moord, "--ipv6", "--subnet", subnet) as net, containers(moord) as made:
        [data] = json.loads(moord.docker("network", "inspect", net).stdout)
        assert data["EnableIPv6"] is True
        v4, v6 = data["IPAM"]["Config"]
        assert ipaddress.ip_network(v4["Subnet"]).version == 4  # IPv4 beside it, as dockerd
        assert v6 == {"Subnet": subnet, "Gateway": gateway}

        web = unique("web")
        made.append(web)
        moord.docker("run", "-d", "--name", web, "--network", net, "busybox", *HTTPD)
        ep = endpoint(moord, web, net)
        address = ipaddress.IPv6Address(ep["GlobalIPv6Address"])
        assert address in net6
        assert ep["GlobalIPv6PrefixLen"] == 64
        assert ep["IPv6Gateway"] == gateway
        assert ep["IPAddress"]  # and an IPv4 address
        [data] = json.loads(moord.docker("network", "inspect", net).stdout)
        [entry] = data["Containers"].values()
        assert entry["IPv6Address"] == f"{address}/64"

        routes = moord.docker("exec", web, "ip", "-6", "route").stdout
        assert f"default via {gateway} dev eth0" in routes
        addrs = moord.docker("exec", web, "ip", "-6", "addr", "show", "eth0").stdout
        assert f"{address}/64" in addrs

        # another container reaches it by name (AAAA) and by address, and the gateway
        script = (f"nslookup -type=AAAA {web}; wget -qO- http://[{address}]/; "
                  f"ping -c 1 -W 3 {gateway}")
        out = moord.docker("run", "--rm", "--network", net, "busybox", "sh", "-c", script).stdout
        assert f"Address: {address}" in out
        assert "hello from" in out
        assert "1 packets received" in out
        # an IPv4-only container keeps IPv6 off on its interface
        plain = moord.docker("run", "--rm", "busybox", "cat",
                             "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout
        assert plain.strip() == "1"


def test_fixed_ipv6_addresses_and_link_local_ips(moord: Moord, docker_client: Any) -> None:
    import docker

    subnet = v6_subnet()
    net6 = ipaddress.IPv6Network(subnet)
    fixed = str(net6.network_address + 0xF00D)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
        subnet=subnet, iprange=str(ipaddress.IPv6Network(f"{net6.network_address}/96")),
        gateway=str(net6.network_address + 0xFFFF))])
    name = unique("net")
    created = docker_client.networks.create(name, enable_ipv6=True, ipam=ipam)
    try:
        # the SDK sends no IPAM Options: dockerd shows null (the docker CLI's {} stays {})
        assert created.attrs["IPAM"]["Options"] is None
        with containers(moord) as made:
            a = unique("a")
            made.append(a)
            moord.docker("run", "-d", "--name", a, "--network", name, "--ip6", fixed,
                         "--link-local-ip", "169.254.8.8", "--link-local-ip", "fe80::8",
                         "busybox", "sleep", "300")
            ep = endpoint(moord, a, name)
            assert ep["IPAMConfig"] == {"IPv6Address": fixed,
                                        "LinkLocalIPs": ["169.254.8.8", "fe80::8"]}
            assert ep["GlobalIPv6Address"] == fixed
            addrs = moord.docker("exec", a, "ip", "addr", "show", "eth0").stdout
            for shown in (f"{fixed}/64", "169.254.8.8/16", "fe80::8/64"):
                assert shown in addrs

            # a dynamic address comes from the ip-range; reconnected with a fixed one
            b = unique("b")
            made.append(b)
            container = docker_client.containers.run("busybox", "sleep 300", name=b,
                                                     network=name, detach=True)
            dynamic = ipaddress.IPv6Address(endpoint(moord, b, name)["GlobalIPv6Address"])
            assert dynamic in ipaddress.IPv6Network(f"{net6.network_address}/96")
            net = docker_client.networks.get(name)
            net.disconnect(container)
            wanted = str(net6.network_address + 0xBEEF)
            net.connect(container, ipv6_address=wanted)
            ep = endpoint(moord, b, name)
            assert ep["IPAMConfig"] == {"IPv6Address": wanted}
            assert ep["GlobalIPv6Address"] == wanted
            ping = moord.docker("exec", b, "ping", "-c", "1", "-W", "3", fixed).stdout
            assert "1 packets received" in ping

            # taken, outside the subnet, on a network without IPv6, on the default bridge
            late = unique("late")
            made.append(late)
            clash = moord.docker("run", "-d", "--name", late, "--network", name, "--ip6", fixed,
                                 "busybox", "sleep", "1", check=False)
            assert "Address already in use" in clash.stderr
            outside = moord.docker("create", "--network", name, "--ip6", "2001:db9::5",
                                   "busybox", check=False)
            assert "does not belong to any of this network's subnets" in outside.stderr
            with network(moord, "--subnet", "10.213.77.0/24") as plain:
                refused = moord.docker("create", "--network", plain, "--ip6", fixed, "busybox",
                                       check=False)
                assert "no configured subnet contains IP address" in refused.stderr
            refused = moord.docker("create", "--ip6", fixed, "busybox", check=False)
            assert "user specified IP address is supported on user defined networks only" \
                in refused.stderr
            refused = moord.docker("create", "--link-local-ip", "0.0.0.0", "busybox",
                                   check=False)
            assert "invalid link-local IP address: 0.0.0.0" in refused.stderr
    finally:
        created.remove()


# --- published ports ------------------------------------------------------------------------


def test_ports_published_on_ipv4_and_ipv6(moord: Moord) -> None:
    port, loop6 = free_dual_port(), free_dual_port()
    with network(moord, "--ipv6", "--subnet", v6_subnet()) as net, containers(moord) as made:
        web = unique("web")
        made.append(web)
        moord.docker("run", "-d", "--name", web, "--network", net, "-p", f"{port}:80",
                     "-p", f"[::1]:{loop6}:80", "-p", "80", "busybox", *HTTPD)
        shown = sorted(moord.docker("port", web).stdout.splitlines())
        ephemeral = [line for line in shown if f":{port}" not in line and f":{loop6}" not in line]
        assert f"80/tcp -> 0.0.0.0:{port}" in shown
        assert f"80/tcp -> [::]:{port}" in shown
        assert f"80/tcp -> [::1]:{loop6}" in shown
        # `-p 80` takes the same ephemeral port on both families
        assert len(ephemeral) == 2
        assert len({line.rsplit(":", 1)[1] for line in ephemeral}) == 1
        ports = inspect(moord, web)["NetworkSettings"]["Ports"]  # type: ignore[index]
        assert {"HostIp": "::", "HostPort": str(port)} in ports["80/tcp"]
        ps = moord.docker("ps", "--filter", f"name={web}", "--format", "{{.Ports}}").stdout
        assert f"[::]:{port}->80/tcp" in ps

        for url in (f"http://127.0.0.1:{port}/", f"http://[::1]:{port}/",
                    f"http://[::1]:{loop6}/"):
            assert http_get(url).startswith("hello from "), url
        assert closed(f"http://127.0.0.1:{loop6}/")  # [::1] only
        table = subprocess.run(["nft", "list", "table", "ip6", moord.network_prefix],
                               capture_output=True, text=True, check=True).stdout
        address = endpoint(moord, web, net)["GlobalIPv6Address"]
        assert f"dnat to [{address}]:80" in table
    assert closed(f"http://[::1]:{port}/")
    assert closed(f"http://[::1]:{loop6}/")


def test_ipv4_only_networks_publish_on_ipv4(moord: Moord) -> None:
    port = free_dual_port()
    with containers(moord) as made:
        web = unique("web")
        made.append(web)
        moord.docker("run", "-d", "--name", web, "-p", f"{port}:80", "busybox", *HTTPD)
        assert moord.docker("port", web).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
        refused = moord.docker("create", "-p", "[::1]:8080:80", "busybox", check=False)
        assert refused.returncode != 0
        assert "needs an IPv6 network" in refused.stderr


# --- validation --------------------------------------------------------------------------------


def test_network_names_as_dockerd_takes_them(moord: Moord, docker_client: Any) -> None:
    spaced = f"test {secrets.token_hex(2)}"
    moord.docker("network", "create", spaced)
    try:
        [data] = json.loads(moord.docker("network", "inspect", spaced).stdout)
        assert data["Name"] == spaced
        with containers(moord) as made:
            c = unique("c")
            made.append(c)
            moord.docker("run", "-d", "--name", c, "--network", spaced, "busybox", "sleep", "30")
            assert endpoint(moord, c, spaced)["IPAddress"]
    finally:
        moord.docker("network", "rm", spaced)
    long_name = "n" * 300
    created = docker_client.networks.create(long_name)
    assert docker_client.networks.get(long_name).id == created.id
    created.remove()
    blank = moord.docker("network", "create", "   ", check=False)
    assert "invalid name: name is empty" in blank.stderr


def test_ipv6_ipam_errors_are_400s(docker_client: Any) -> None:
    import docker

    cases = [
        ({"subnet": "2001:db8:5::/64", "gateway": "10.0.0.1"}, "parent subnet is an IPv6 block"),
        ({"subnet": "2001:db8:5::1/64"}, "it should be 2001:db8:5::/64"),
        ({"subnet": "2001:db8:5::/64", "iprange": "2001:db8:6::/96"}, "not within the subnet"),
    ]
    for pool, message in cases:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(**pool)])
        with pytest.raises(docker.errors.APIError) as info:
            docker_client.networks.create(unique("bad"), enable_ipv6=True, ipam=ipam)
        assert info.value.status_code == 400
        assert message in str(info.value.explanation)


# --- the default bridge, and a restart ---------------------------------------------------------


def test_default_bridge_ipv6_survives_a_restart(fresh_moord: Callable[[], Moord]) -> None:
    subnet = v6_subnet()
    net6 = ipaddress.IPv6Network(subnet)
    d = fresh_moord()
    d.start("--ipv6", "--fixed-cidr-v6", subnet)
    d.import_busybox()
    [bridge] = json.loads(d.docker("network", "inspect", "bridge").stdout)
    assert bridge["EnableIPv6"] is True
    assert bridge["IPAM"]["Options"] is None
    assert bridge["IPAM"]["Config"][1] == {"Subnet": subnet,
                                           "Gateway": str(net6.network_address + 1)}
    port = free_dual_port()
    d.docker("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", *HTTPD)
    settings = inspect(d, "web")["NetworkSettings"]
    assert isinstance(settings, dict)
    address = settings["GlobalIPv6Address"]  # the deprecated top-level fields, as dockerd
    assert ipaddress.IPv6Address(address) in net6
    assert settings["IPv6Gateway"] == str(net6.network_address + 1)
    assert http_get(f"http://[::1]:{port}/").startswith("hello from ")

    d.stop()
    # moord is gone: DNAT keeps serving IPv4 loopback; ::1 waits for moord's forwarder
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
    d.start("--ipv6", "--fixed-cidr-v6", subnet)
    assert inspect(d, "web")["NetworkSettings"]["GlobalIPv6Address"] == address  # type: ignore[index]
    assert http_get(f"http://[::1]:{port}/").startswith("hello from ")
    d.docker("stop", "-t", "1", "web")
    assert closed(f"http://[::1]:{port}/")

    # without --ipv6 the default bridge is IPv4-only again
    d.stop()
    d.start()
    [bridge] = json.loads(d.docker("network", "inspect", "bridge").stdout)
    assert bridge["EnableIPv6"] is False
    assert len(bridge["IPAM"]["Config"]) == 1
