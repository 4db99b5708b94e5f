"""Networking through the stock docker CLI against a real moord: names and aliases on user
networks and on the default bridge, published ports (loopback, ephemeral, -P, conflicts),
host and none modes, the network API and `moor network`/`moor port`, a moord restart that
keeps addresses and ports, and a third-party network driver installed with pip.

Traffic goes only to loopback, to this host's own addresses and to containers the tests
made; the one upstream resolver used is a tiny DNS server the test runs on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.support.daemon import REPO, Moord, inspect

pytestmark = pytest.mark.integration

HTTPD = ("sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && "
                     "exec httpd -f -p 80 -h /www")


def unique(prefix: str = "n") -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def prefix_of(d: Moord) -> str:
    return str(getattr(d, "network_prefix", "moorage"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 15.0) -> str:
    """GET from the host, retrying while the container's httpd starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def host_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def moor(d: Moord, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "engine.cli.main", *args], env=d.env,
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"moor {' '.join(args)} failed: {result.stderr}")
    return result


@contextlib.contextmanager
def containers(d: Moord) -> Iterator[list[str]]:
    """Names of containers to remove afterwards, whatever happens."""
    made: list[str] = []
    try:
        yield made
    finally:
        if made:
            d.docker("rm", "-f", *made, check=False, timeout=120)


@contextlib.contextmanager
def network(d: Moord, *create_args: str) -> Iterator[str]:
    name = unique("net")
    d.docker("network", "create", *create_args, name)
    try:
        yield name
    finally:
        d.docker("network", "rm", name, check=False)


def ip_of(d: Moord, container: str, net: str) -> str:
    data = inspect(d, container)
    settings = data["NetworkSettings"]
    assert isinstance(settings, dict)
    return str(settings["Networks"][net]["IPAddress"])


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


# --- names ----------------------------------------------------------------------------------


def test_user_network_names_and_aliases(moord: Moord) -> None:
    with network(moord) as net, containers(moord) as made:
        web, other = unique("web"), unique("peer")
        made += [web, other]
        moord.docker("run", "-d", "--name", web, "--network", net, "--network-alias", "frontend",
                     "busybox", *HTTPD)
        moord.docker("run", "-d", "--name", other, "--network", net, "busybox", "sleep", "300")
        web_ip = ip_of(moord, web, net)
        # by name, by alias, by short ID: ping, wget, nc
        for target in (web, "frontend"):
            result = moord.docker("run", "--rm", "--network", net, "busybox",
                                  "ping", "-c", "1", "-W", "3", target)
            assert f"({web_ip})" in result.stdout
        page = moord.docker("run", "--rm", "--network", net, "busybox", "sh", "-c",
                            "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://frontend/ && "
                            "exit 0; sleep 0.5; done; exit 1").stdout
        assert page.startswith("hello from ")
        cid = inspect(moord, web)["Id"]
        assert isinstance(cid, str)
        result = moord.docker("run", "--rm", "--network", net, "busybox", "sh", "-c",
                              f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {cid[:12]} 80 "
                              "| head -1")
        assert "HTTP/1." in result.stdout
        resolv = moord.docker("run", "--rm", "--network", net, "busybox", "cat",
                              "/etc/resolv.conf").stdout
        gateway = inspect(moord, web)["NetworkSettings"]["Networks"][net]["Gateway"]  # type: ignore[index]
        assert f"nameserver {gateway}" in resolv
        assert "ndots:0" in resolv
        settings = inspect(moord, web)["NetworkSettings"]["Networks"][net]  # type: ignore[index]
        assert settings["Aliases"] == ["frontend"]
        assert web in settings["DNSNames"]
        assert "frontend" in settings["DNSNames"]


def test_default_bridge_resolves_names_too(moord: Moord) -> None:
    with containers(moord) as made:
        a = unique("a")
        made.append(a)
        moord.docker("run", "-d", "--name", a, "busybox", "sleep", "300")
        data = inspect(moord, a)
        settings = data["NetworkSettings"]
        assert isinstance(settings, dict)
        ip = settings["IPAddress"]
        assert ip
        assert settings["Networks"]["bridge"]["IPAddress"] == ip
        result = moord.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "3", a)
        assert f"({ip})" in result.stdout


def test_dns_forwards_to_the_containers_own_upstream(moord: Moord) -> None:
    """`--dns` servers become moord's upstreams for that container: a fake server on a
    loopback address of its own, port 53 (moord runs in the host's namespace, so it can
    reach it), answers. Each session picks its own address in 127/8, so test sessions
    running side by side (or a resolver on 127.0.0.1:53) don't take it from each other."""
    import dns.message
    import dns.rrset

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = ""
    problems: list[str] = []
    for _ in range(20):
        candidate = f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        try:
            server.bind((candidate, 53))
        except OSError as exc:
            problems.append(f"{candidate}:53: {exc}")
            continue
        address = candidate
        break
    if not address:
        server.close()
        pytest.fail("no loopback address with a free port 53 for the fake DNS server:\n  "
                    + "\n  ".join(problems), pytrace=False)
    asked: list[str] = []

    def serve() -> None:
        while True:
            try:
                data, peer = server.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            asked.append(query.question[0].name.to_text())
            reply = dns.message.make_response(query)
            if query.question[0].rdtype == 1:
                reply.answer.append(dns.rrset.from_text_list(
                    query.question[0].name, 60, "IN", "A", ["192.0.2.123"]))
            server.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = moord.docker("run", "--rm", "--dns", address, "--dns-search", "corp.test",
                              "busybox", "sh", "-c",
                              "nslookup upstream.example.test; cat /etc/resolv.conf")
        assert "192.0.2.123" in result.stdout
        assert "search corp.test" in result.stdout
        assert f"nameserver {address}" not in result.stdout
        assert any(name.startswith("upstream.example.test") for name in asked)
    finally:
        server.close()


def test_add_host_and_hostname_in_etc_files(moord: Moord) -> None:
    hosts = moord.docker("run", "--rm", "--hostname", "box", "--add-host", "db.local:10.9.8.7",
                         "--add-host", "gw:host-gateway", "busybox", "cat", "/etc/hosts").stdout
    assert "10.9.8.7\tdb.local" in hosts
    assert "\tbox" in hosts
    assert "\tgw" in hosts


# --- published ports -------------------------------------------------------------------------


@pytest.mark.cgroup_v2
def test_publish_on_loopback_serves_the_host(moord: Moord) -> None:
    port = free_port()
    with containers(moord) as made:
        web = unique("web")
        made.append(web)
        moord.docker("run", "-d", "--name", web, "-p", f"127.0.0.1:{port}:80", "busybox", *HTTPD)
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
        assert moord.docker("port", web).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
        ports = inspect(moord, web)["NetworkSettings"]["Ports"]  # type: ignore[index]
        assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        ps = moord.docker("ps", "--filter", f"name={web}", "--format", "{{.Ports}}").stdout
        assert ps.strip() == f"127.0.0.1:{port}->80/tcp"
    # stopped and removed: nothing answers, and the port is free again
    with pytest.raises(OSError):  # noqa: PT011 - refused or reset, either is "closed"
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.cgroup_v2
def test_ephemeral_port_reported_by_docker_port_and_moor_port(moord: Moord) -> None:
    with containers(moord) as made:
        web = unique("web")
        made.append(web)
        moord.docker("run", "-d", "--name", web, "-p", "80", "busybox", *HTTPD)
        shown = moord.docker("port", web, "80").stdout.strip()
        host_ip, _, port_text = shown.rpartition(":")
        assert host_ip == "0.0.0.0"
        port = int(port_text)
        assert 32768 <= port <= 60999
        assert moor(moord, "port", web, "80").stdout.strip() == shown
        assert moor(moord, "port", web).stdout == f"80/tcp -> {shown}\n"
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
        missing = moor(moord, "port", web, "81", check=False)
        assert missing.returncode == 1
        assert "No public port '81/tcp' published" in missing.stderr


def test_publish_all_exposed_ports(moord: Moord) -> None:
    with containers(moord) as made:
        web = unique("web")
        made.append(web)
        moord.docker("run", "-d", "--name", web, "-P", "--expose", "80", "--expose", "8080",
                     "busybox", *HTTPD)
        lines = moord.docker("port", web).stdout.splitlines()
        assert sorted(line.split(" -> ")[0] for line in lines) == ["80/tcp", "8080/tcp"]
        port = int(moord.docker("port", web, "80").stdout.strip().rpartition(":")[2])
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")


def test_conflicting_publish_fails_clearly_and_leaves_nothing(moord: Moord) -> None:
    port = free_port()
    prefix = prefix_of(moord)
    with containers(moord) as made:
        first, second = unique("first"), unique("second")
        made += [first, second]
        moord.docker("run", "-d", "--name", first, "-p", f"{port}:80", "busybox", *HTTPD)
        links_before = sorted(n for n in host_links() if n.startswith(prefix))
        result = moord.docker("run", "-d", "--name", second, "-p", f"{port}:80", "busybox",
                              *HTTPD, check=False)
        assert result.returncode == 125
        assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in result.stderr
        assert "driver failed programming external connectivity on endpoint" in result.stderr
        state = inspect(moord, second)["State"]
        assert isinstance(state, dict)
        assert state["Running"] is False
        assert sorted(n for n in host_links() if n.startswith(prefix)) == links_before
        assert inspect(moord, second)["NetworkSettings"]["Ports"] == {}  # type: ignore[index]
        table = subprocess.run(["nft", "list", "table", "ip", prefix], capture_output=True,
                               text=True).stdout
        assert table.count(f"dport {port} dnat") == 1
        # the first still serves
        assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")


# --- host and none -----------------------------------------------------------------------------


def test_host_network_sees_the_hosts_interfaces(moord: Moord) -> None:
    out = moord.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    inside = sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
    assert sorted(host_links()) == inside
    result = moord.docker("run", "--rm", "--network", "host", "-p", "8080:80", "busybox", "true",
                          check=False)
    assert "Published ports are discarded when using host network mode" in result.stderr


def test_none_network_has_only_loopback(moord: Moord) -> None:
    out = moord.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"]
    assert "UP" in out or "LOOPBACK" in out


# --- the network API and moor network ------------------------------------------------------------


def test_predefined_networks_and_their_rules(moord: Moord) -> None:
    listed = moord.docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").stdout
    for line in ("bridge bridge local", "host host local", "none null local"):
        assert line in listed.splitlines()
    bridge = json.loads(moord.docker("network", "inspect", "bridge").stdout)[0]
    assert bridge["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    assert bridge["IPAM"]["Config"][0]["Subnet"]
    for name in ("bridge", "host", "none"):
        result = moord.docker("network", "rm", name, check=False)
        assert result.returncode == 1
        assert f"{name} is a pre-defined network and cannot be removed" in result.stderr
    result = moord.docker("network", "create", "-d", "host", unique(), check=False)
    assert 'only one instance of "host" network is allowed' in result.stderr
    result = moord.docker("network", "create", "-d", "nosuchdriver", unique(), check=False)
    assert 'plugin "nosuchdriver" not found' in result.stderr


def test_create_inspect_filters_and_remove(moord: Moord) -> None:
    name = unique("net")
    out = moord.docker("network", "create", "--subnet", "10.213.40.0/24", "--gateway",
                       "10.213.40.254", "--ip-range", "10.213.40.128/25", "--label", "team=red",
                       "--internal", name).stdout.strip()
    try:
        assert len(out) == 64
        data = json.loads(moord.docker("network", "inspect", name).stdout)[0]
        assert data["Id"] == out
        assert data["Internal"] is True
        assert data["IPAM"]["Config"] == [{"Subnet": "10.213.40.0/24", "Gateway": "10.213.40.254",
                                           "IPRange": "10.213.40.128/25"}]
        assert data["Labels"] == {"team": "red"}
        assert moord.docker("network", "ls", "-q", "--filter", "label=team=red").stdout.split() == \
            [out[:12]]
        assert name in moord.docker("network", "ls", "--filter", "type=custom",
                                    "--format", "{{.Name}}").stdout.split()
        assert name not in moord.docker("network", "ls", "--filter", "type=builtin",
                                        "--format", "{{.Name}}").stdout.split()
        again = moord.docker("network", "create", name, check=False)
        assert f"network with name {name} already exists" in again.stderr
        overlap = moord.docker("network", "create", "--subnet", "10.213.40.0/25", unique(),
                               check=False)
        assert "Pool overlaps with other one on this address space" in overlap.stderr
        # a static address: outside the ip-range is fine, in the subnet
        with containers(moord) as made:
            c = unique("c")
            made.append(c)
            moord.docker("run", "-d", "--name", c, "--network", name, "--ip", "10.213.40.7",
                         "busybox", "sleep", "300")
            assert ip_of(moord, c, name) == "10.213.40.7"
            inspected = json.loads(moord.docker("network", "inspect", name).stdout)[0]
            [(_cid, entry)] = inspected["Containers"].items()
            assert entry["Name"] == c
            assert entry["IPv4Address"] == "10.213.40.7/24"
            busy = moord.docker("network", "rm", name, check=False)
            assert "has active endpoints" in busy.stderr
            taken = moord.docker("run", "-d", "--network", name, "--ip", "10.213.40.7", "busybox",
                                 "true", check=False)
            assert "Address already in use" in taken.stderr
            if taken.stdout.strip():
                made.append(taken.stdout.strip())
    finally:
        moord.docker("network", "rm", name, check=False)
    assert moord.docker("network", "inspect", name, check=False).returncode == 1


def test_ip_on_default_bridge_is_refused(moord: Moord) -> None:
    result = moord.docker("create", "--ip", "172.17.0.50", "busybox", check=False)
    assert "user specified IP address is supported on user defined networks only" in result.stderr


@pytest.mark.cgroup_v2
def test_connect_and_disconnect_a_running_container(moord: Moord) -> None:
    with network(moord) as net, containers(moord) as made:
        c = unique("c")
        made.append(c)
        moord.docker("run", "-d", "--name", c, "busybox", "sleep", "300")
        moord.docker("network", "connect", "--alias", "svc", net, c)
        nets = inspect(moord, c)["NetworkSettings"]["Networks"]  # type: ignore[index]
        assert sorted(nets) == sorted(["bridge", net])
        ip = nets[net]["IPAddress"]
        result = moord.docker("run", "--rm", "--network", net, "busybox", "ping", "-c", "1",
                              "-W", "3", "svc")
        assert f"({ip})" in result.stdout
        moord.docker("network", "disconnect", net, c)
        assert list(inspect(moord, c)["NetworkSettings"]["Networks"]) == ["bridge"]  # type: ignore[index]
        again = moord.docker("network", "disconnect", net, c, check=False)
        assert "is not connected to network" in again.stderr


def test_prune_removes_unused_networks(moord: Moord) -> None:
    used, unused = unique("used"), unique("unused")
    moord.docker("network", "create", used)
    moord.docker("network", "create", "--label", "prune=me", unused)
    with containers(moord) as made:
        c = unique("c")
        made.append(c)
        moord.docker("run", "-d", "--name", c, "--network", used, "busybox", "sleep", "300")
        out = moord.docker("network", "prune", "-f", "--filter", "label=prune=me").stdout
        assert out == f"Deleted Networks:\n{unused}\n\n"
    moord.docker("network", "rm", used)


def test_moor_network_commands(moord: Moord) -> None:
    name = unique("mnet")
    out = moor(moord, "network", "create", "--subnet", "10.213.41.0/24", name).stdout.strip()
    assert len(out) == 64
    try:
        listed = moor(moord, "network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout
        assert f"{name} bridge" in listed.splitlines()
        table = moor(moord, "network", "ls").stdout.splitlines()
        assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        data = json.loads(moor(moord, "network", "inspect", name).stdout)[0]
        assert data["IPAM"]["Config"][0]["Subnet"] == "10.213.41.0/24"
        assert moor(moord, "network", "inspect", "-f", "{{.Driver}}", name).stdout == "bridge\n"
        missing = moor(moord, "network", "inspect", unique(), check=False)
        assert missing.returncode == 1
        with containers(moord) as made:
            c = unique("c")
            made.append(c)
            moor(moord, "run", "-d", "--name", c, "--network", name, "--network-alias", "x1",
                 "-p", "127.0.0.1::80", "busybox", *HTTPD)
            settings = inspect(moord, c)["NetworkSettings"]["Networks"][name]  # type: ignore[index]
            assert settings["Aliases"] == ["x1"]
            port = moor(moord, "port", c, "80").stdout.strip()
            assert port.startswith("127.0.0.1:")
            moor(moord, "network", "disconnect", name, c)
            # no network left; a live connect still works
            assert inspect(moord, c)["NetworkSettings"]["Networks"] == {}  # type: ignore[index]
            moor(moord, "network", "connect", "--alias", "x2", name, c)
            settings = inspect(moord, c)["NetworkSettings"]["Networks"][name]  # type: ignore[index]
            assert settings["Aliases"] == ["x2"]
            assert settings["IPAddress"].startswith("10.213.41.")
    finally:
        assert moor(moord, "network", "rm", name).stdout == f"{name}\n"


# --- a moord restart ----------------------------------------------------------------------------


def test_restart_keeps_addresses_and_published_ports(fresh_moord: Callable[[], Moord]) -> None:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    port = free_port()
    d.docker("network", "create", "apps")
    d.docker("run", "-d", "--name", "web", "--network", "apps", "-p", f"127.0.0.1:{port}:80",
             "busybox", *HTTPD)
    d.docker("run", "-d", "--name", "db", "busybox", "sleep", "300")
    web_ip = ip_of(d, "web", "apps")
    db_ip = ip_of(d, "db", "bridge")
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
    table = subprocess.run(["nft", "list", "table", "ip", prefix_of(d)], capture_output=True,
                           text=True).stdout

    d.stop()
    # moord is gone: the containers and their published port keep working
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
    d.start()

    assert ip_of(d, "web", "apps") == web_ip
    assert ip_of(d, "db", "bridge") == db_ip
    assert d.docker("port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from ")
    after = subprocess.run(["nft", "list", "table", "ip", prefix_of(d)], capture_output=True,
                           text=True).stdout
    assert after == table  # rebuilt, not duplicated
    # the port and the addresses are still taken; the names still resolve
    clash = d.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "true", check=False)
    assert "port is already allocated" in clash.stderr
    result = d.docker("run", "--rm", "--network", "apps", "busybox", "ping", "-c", "1", "-W", "3",
                      "web")
    assert f"({web_ip})" in result.stdout
    newcomer = d.docker("run", "--rm", "--network", "apps", "busybox", "ip", "-o", "-4",
                        "addr", "show", "eth0").stdout
    assert f" {web_ip}/" not in newcomer
    # a stop releases it all
    d.docker("stop", "-t", "1", "web")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --- a third-party network driver ------------------------------------------------------------------


def test_third_party_driver_found_and_used(fresh_moord: Callable[[], Moord]) -> None:
    from tests.support.net_plugin import DRIVER, network_plugin_installed

    with network_plugin_installed():
        d = fresh_moord()
        d.start()
        d.import_busybox()
        d.docker("network", "create", "-d", DRIVER, "--subnet", "10.213.50.0/24", "-o",
                 "colour=green", "tn")
        data = json.loads(d.docker("network", "inspect", "tn").stdout)[0]
        assert data["Driver"] == DRIVER
        assert data["Options"] == {"colour": "green"}
        bad = d.docker("network", "create", "-d", DRIVER, "-o", "size=3", "tn2", check=False)
        assert "testnet: unknown option 'size'" in bad.stderr
        out = d.docker("run", "--rm", "--network", "tn", "busybox", "ip", "-o", "-4", "addr",
                       "show", "eth0").stdout
        assert "inet 10.213.50." in out
        trace_file = d.data_root / "state" / "network-drivers" / DRIVER / "trace.jsonl"
        calls = [json.loads(line)["call"] for line in trace_file.read_text().splitlines()]
        assert calls[0] == "setup"
        for call in ("create_network", "join", "leave"):
            assert call in calls
        d.docker("network", "rm", "tn")
        calls = [json.loads(line)["call"] for line in trace_file.read_text().splitlines()]
        assert calls[-1] == "delete_network"
        d.cleanup()
