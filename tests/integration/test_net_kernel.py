"""The network subsystem against the real kernel, without moord: the bridge driver, the
namespace recipe, nftables DNAT, the DNS server, and NetworkService's attach/detach/restore.

Every object made here is named with a per-test prefix (`mt` + 5 hex digits) and removed
afterwards (links, nftables table, namespace files); the tests check that nothing is
left. Traffic goes only to loopback, to this host's own addresses and into namespaces
the tests made.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from engine.errors import NotFound, SystemFailure
from engine.kernel import netlink, netns
from engine.networks.cleanup import purge_host_state
from engine.networks.model import ContainerInfo, ContainerNetworking, EndpointRequest
from engine.networks.service import NetworkOptions, NetworkService
from network_drivers.bridge import BridgeDriver
from network_drivers.builtins import moorage_network_drivers
from plugins.network_contract import DriverContext, Endpoint, NetworkConfig, PublishedPort

pytestmark = pytest.mark.integration

BUSYBOX = "/usr/bin/busybox"


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (they make bridges, namespaces and nftables rules)")
    for tool in ("nft", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (apt install nftables util-linux)")
    if not os.access(BUSYBOX, os.X_OK):
        pytest.fail("busybox is missing (apt install busybox-static)")


@attrs.define
class Host:
    prefix: str
    root: Path

    @property
    def exec_root(self) -> Path:
        return self.root / "run"

    @property
    def data_root(self) -> Path:
        return self.root / "data"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host("mt" + secrets.token_hex(3)[:5], tmp_path)
    try:
        yield h
    finally:
        purge_host_state(h.prefix, h.exec_root)
    assert leftovers(h) == []


def leftovers(h: Host) -> list[str]:
    found = [f"link {n}" for n in netlink.links_with_prefix(h.prefix)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if f"table ip {h.prefix}\n" in tables + "\n":
        found.append(f"nft table {h.prefix}")
    ns_dir = h.exec_root / "netns"
    if ns_dir.is_dir():
        found += [f"netns {p}" for p in ns_dir.iterdir()]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if str(h.root) in line.split()[4]]
    return found


def in_ns_sync(path: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", BUSYBOX, *argv], capture_output=True,
                          text=True, timeout=timeout, check=False)


async def in_ns(path: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run busybox in a namespace on a thread (moord's DNS server runs on this trio loop)."""
    return await trio.to_thread.run_sync(lambda: in_ns_sync(path, *argv))


def host_address() -> str:
    """A non-loopback IPv4 address of this host (traffic to it stays on the machine)."""
    for a in netlink.host_networks().addresses:
        if not a.ip.is_loopback and not str(a.ip).startswith(("10.213.", "172.")):
            return str(a.ip)
    pytest.fail("this host has no non-loopback IPv4 address to publish a port on", pytrace=False)


class NsServer:
    """A TCP server whose listening socket lives in a namespace (made there on a thread)."""

    def __init__(self, path: str, port: int, reply: bytes) -> None:
        self.reply = reply
        holder: dict[str, socket.socket] = {}

        def make() -> None:
            with netns.in_netns(path):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
                s.listen(8)
                holder["s"] = s

        t = threading.Thread(target=make)
        t.start()
        t.join()
        self.sock = holder["s"]
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            with conn:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()


async def nft_table(prefix: str) -> str:
    result = await trio.run_process(["nft", "list", "table", "ip", prefix], capture_stdout=True,
                                    capture_stderr=True, check=False)
    return result.stdout.decode()


def fetch(address: str, port: int) -> bytes:
    with socket.create_connection((address, port), timeout=5) as s:
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


# --- the bridge driver alone ---------------------------------------------------------------


@pytest.mark.cgroup_v2
async def test_bridge_driver_join_ping_publish_and_clean_up(host: Host) -> None:
    driver = BridgeDriver()
    await driver.setup(DriverContext(host.prefix, host.data_root, host.exec_root,
                                     lambda fn: None))
    await driver.ready()
    subnet = ipaddress.IPv4Network("10.213.7.0/24")
    config = NetworkConfig(id=secrets.token_hex(32), name="t", subnet=subnet,
                           gateway=ipaddress.IPv4Address("10.213.7.1"))
    await driver.create_network(config)
    await driver.create_network(config)  # idempotent
    bridge = driver.bridge_name(config)
    assert netlink.link_kind(bridge) == "bridge"

    path = str(host.exec_root / "netns" / "c1")
    await trio.to_thread.run_sync(netns.create_netns, path)
    endpoint = Endpoint(id=secrets.token_hex(32), container_id="c1", netns=path, ifname="eth0",
                        address=ipaddress.IPv4Interface("10.213.7.2/24"),
                        gateway=ipaddress.IPv4Address("10.213.7.1"), mac="02:42:0a:d5:07:02")
    await driver.join(config, endpoint)
    await driver.join(config, endpoint)  # idempotent: nothing duplicated
    assert sorted(netlink.namespace_links(path)) == ["eth0", "lo"]
    ping = await in_ns(path, "ping", "-c", "1", "-W", "3", "10.213.7.1")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    route = (await trio.run_process(["nsenter", f"--net={path}", "ip", "route"],
                                    capture_stdout=True)).stdout.decode()
    assert "default via 10.213.7.1 dev eth0" in route

    server = NsServer(path, 8080, b"hello from the namespace\n")
    try:
        port = free_port()
        loop_port = free_port()
        await driver.publish(config, endpoint, [
            PublishedPort("tcp", "0.0.0.0", port, "10.213.7.2", 8080),
            PublishedPort("tcp", "127.0.0.1", loop_port, "10.213.7.2", 8080),
        ])
        assert await trio.to_thread.run_sync(fetch, "127.0.0.1", port) == b"hello from the namespace\n"
        assert await trio.to_thread.run_sync(fetch, host_address(), port) == \
            b"hello from the namespace\n"
        assert await trio.to_thread.run_sync(fetch, "127.0.0.1", loop_port) == \
            b"hello from the namespace\n"
        # the loopback client is masqueraded to the bridge's address
        assert server.peers[0] == "10.213.7.1"
        table = await nft_table(host.prefix)
        assert table.count(f"dport {port} dnat") == 1
        await driver.unpublish(config, endpoint)
        with pytest.raises(ConnectionRefusedError):
            await trio.to_thread.run_sync(fetch, "127.0.0.1", loop_port)
    finally:
        server.close()
    await driver.leave(config, endpoint)
    await driver.leave(config, endpoint)  # idempotent
    assert netlink.namespace_links(path) == ["lo"]
    await trio.to_thread.run_sync(netns.delete_netns, path)
    await driver.delete_network(config)
    await driver.delete_network(config)
    assert leftovers(host) == []


async def test_namespace_work_makes_no_forks_and_keeps_threads_home(host: Host,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    forks: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    home = os.stat("/proc/self/ns/net").st_ino
    paths = [str(host.exec_root / "netns" / f"n{i}") for i in range(6)]
    for path in paths:
        await netlink.netlink(netns.create_netns, path)
    links = [await netlink.netlink(netlink.namespace_links, p) for p in paths]
    assert all(names == ["lo"] for names in links)

    def where() -> int:
        return os.stat("/proc/thread-self/ns/net").st_ino

    async with trio.open_nursery() as nursery:
        seen: list[int] = []

        async def probe() -> None:
            seen.append(await netlink.netlink(where))

        for _ in range(20):
            nursery.start_soon(probe)
    assert set(seen) == {home}
    for path in paths:
        await netlink.netlink(netns.delete_netns, path)
    assert forks == []


# --- NetworkService with the built-in drivers ------------------------------------------------


@attrs.define
class FakeContainers:
    """The container manager as the network service sees it."""

    infos: dict[str, ContainerInfo] = attrs.field(factory=dict)

    def find(self, ref: str) -> ContainerInfo:
        for info in self.infos.values():
            if ref in (info.id, info.name):
                return info
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[ContainerInfo]:
        return list(self.infos.values())

    async def save_networking(self, container_id: str, networking: ContainerNetworking) -> None:
        self.infos[container_id] = attrs.evolve(self.infos[container_id], networking=networking)


async def open_service(h: Host, nursery: trio.Nursery, running: list[str] | None = None,
                       containers: FakeContainers | None = None) -> NetworkService:
    drivers = {d.name: d for d in moorage_network_drivers()}
    service = await NetworkService.open(
        data_root=h.data_root, exec_root=h.exec_root, drivers=drivers,
        options=NetworkOptions(prefix=h.prefix, default_bridge_subnet="10.213.0.0/24"),
        durable=False)
    service.bind_containers(containers or FakeContainers())
    await nursery.start(service.run)
    await service.restore(running or [])
    return service


def container(service: NetworkService, name: str, mode: str, **kwargs: Any) -> ContainerInfo:
    networking, _ = service.validate_container_networking(network_mode=mode, **kwargs)
    cid = secrets.token_hex(32)
    return ContainerInfo(id=cid, name=name, hostname=cid[:12], networking=networking, running=True)


@pytest.fixture
async def nursery_scope() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def test_service_names_ports_and_cleanup(host: Host, nursery_scope: trio.Nursery) -> None:
    service = await open_service(host, nursery_scope)
    net = await service.create_network(name="apps")
    assert net.pool is not None
    assert net.pool.subnet
    gateway = net.pool.gateway
    web = container(service, "web", "apps",
                    endpoints={"apps": EndpointRequest(aliases=("frontend",))},
                    port_bindings={"8080/tcp": [("127.0.0.1", "")]})
    db = container(service, "db", "apps")
    a_web = await service.attach(web)
    a_db = await service.attach(db)
    assert a_web.network_ns == str(service.netns_path(web.id))
    assert f"nameserver {gateway}" in a_web.resolv_conf
    web_ip = a_web.record.endpoints[0].ip
    assert f"{web_ip}\t{web.hostname}" in a_web.hosts
    assert a_web.record.endpoints[0].mac == "02:42:" + ":".join(
        f"{int(x):02x}" for x in web_ip.split("."))

    # db resolves web by name and alias through moord's DNS on the gateway
    for name in ("web", "frontend", web.id[:12]):
        answer = await in_ns(a_db.network_ns, "nslookup", name, gateway)
        assert web_ip in answer.stdout, answer.stdout + answer.stderr
    assert (await in_ns(a_db.network_ns, "ping", "-c", "1", "-W", "3", web_ip)).returncode == 0

    # the published port reaches a server in web's namespace from the host's loopback
    published = a_web.record.ports[0]
    assert published.host_ip == "127.0.0.1"
    assert 32768 <= published.host_port <= 60999
    server = NsServer(a_web.network_ns, 8080, b"web\n")
    try:
        assert await trio.to_thread.run_sync(fetch, "127.0.0.1", published.host_port) == b"web\n"
    finally:
        server.close()

    with pytest.raises(Exception, match="active endpoints"):
        await service.delete_network("apps")
    await service.detach(web.id)
    await service.detach(web.id)
    await service.detach(db.id)
    assert service.ports.owned_by(web.id) == []
    await service.delete_network("apps")
    assert not any(n.startswith(f"{host.prefix}-") for n in netlink.links_with_prefix(host.prefix))


async def test_port_conflict_fails_clearly_and_leaves_nothing(host: Host,
                                                             nursery_scope: trio.Nursery) -> None:
    service = await open_service(host, nursery_scope)
    port = free_port()
    first = container(service, "first", "bridge", port_bindings={"80/tcp": [("", str(port))]})
    second = container(service, "second", "bridge", port_bindings={"80/tcp": [("", str(port))]})
    await service.attach(first)
    links_before = sorted(netlink.links_with_prefix(host.prefix))
    with pytest.raises(SystemFailure) as info:
        await service.attach(second)
    assert info.value.message == (
        f"failed to set up container networking: driver failed programming external "
        f"connectivity on endpoint second ({info.value.message.split('(')[1].split(')')[0]}): "
        f"Bind for 0.0.0.0:{port} failed: port is already allocated")
    assert service.attachment(second.id) is None
    assert not service.netns_path(second.id).exists()
    assert sorted(netlink.links_with_prefix(host.prefix)) == links_before
    await service.detach(first.id)


@pytest.mark.cgroup_v2
async def test_restart_readopts_addresses_ports_and_names(host: Host) -> None:
    containers = FakeContainers()
    port = free_port()
    async with trio.open_nursery() as nursery:
        service = await open_service(host, nursery, containers=containers)
        web = container(service, "web", "bridge", port_bindings={"80/tcp": [("127.0.0.1", str(port))]})
        containers.infos[web.id] = web
        attached = await service.attach(web)
        table_before = await nft_table(host.prefix)
        nursery.cancel_scope.cancel()  # moord stops; the container (its namespace) stays
    service.ports.close()
    async with trio.open_nursery() as nursery:
        again = await open_service(host, nursery, running=[web.id], containers=containers)
        record = again.attachment(web.id)
        assert record is not None
        assert record.endpoints[0].address == attached.record.endpoints[0].address
        table_after = await nft_table(host.prefix)
        assert table_after == table_before
        # the port is still ours; a second container can't take it
        other = container(again, "other", "bridge",
                          port_bindings={"80/tcp": [("127.0.0.1", str(port))]})
        with pytest.raises(SystemFailure, match="port is already allocated"):
            await again.attach(other)
        # the name still resolves
        peer = container(again, "peer", "bridge")
        a_peer = await again.attach(peer)
        gateway = record.endpoints[0].gateway
        answer = await in_ns(a_peer.network_ns, "nslookup", "web", gateway)
        assert record.endpoints[0].ip in answer.stdout, answer.stdout + answer.stderr
        await again.detach(peer.id)
        nursery.cancel_scope.cancel()
    again.ports.close()
    # a third start where the container is no longer running tears its attachment down
    async with trio.open_nursery() as nursery:
        third = await open_service(host, nursery, running=[], containers=containers)
        assert third.attachment(web.id) is None
        assert not third.netns_path(web.id).exists()
        nursery.cancel_scope.cancel()
    third.ports.close()


async def test_connect_and_disconnect_live(host: Host, nursery_scope: trio.Nursery) -> None:
    containers = FakeContainers()
    service = await open_service(host, nursery_scope, containers=containers)
    await service.create_network(name="back", internal=True)
    app = container(service, "app", "bridge")
    containers.infos[app.id] = app
    attached = await service.attach(app)
    await service.connect("back", "app", EndpointRequest(aliases=("api",)))
    assert sorted(netlink.namespace_links(attached.network_ns)) == ["eth0", "eth1", "lo"]
    info = containers.find("app")
    assert list(info.networking.networks)[-1] == service.get("back").id
    with pytest.raises(Exception, match="already exists in network back"):
        await service.connect("back", "app")
    await service.disconnect("back", "app")
    assert sorted(netlink.namespace_links(attached.network_ns)) == ["eth0", "lo"]
    await service.detach(app.id)
    # a stopped container: only its record changes
    await service.connect("back", "app")
    assert service.get("back").id in containers.find("app").networking.networks
    await service.delete_network("back")


async def test_host_and_none_modes(host: Host, nursery_scope: trio.Nursery) -> None:
    service = await open_service(host, nursery_scope)
    on_host = container(service, "h", "host", port_bindings={"80/tcp": [("", "8080")]})
    assert on_host.networking.ports == []
    attached = await service.attach(on_host)
    assert attached.network_ns == "host"
    alone = await service.attach(container(service, "n", "none"))
    assert alone.network_ns == ""
    assert "127.0.0.1\tlocalhost" in alone.hosts
    with pytest.raises(Exception, match="multiple networks"):
        service.validate_container_networking(network_mode="host",
                                              endpoints={"bridge": EndpointRequest()})
