"""The /networks API through the stock docker CLI, served by the real handlers and a real
NetworkService (bridges and all) on a private socket, with a stand-in for the container
manager: this needs no container integration, only root for the kernel objects."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import pytest
import trio

from engine.api.handlers import networks as handlers
from engine.api.http import RawResponse, Request
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.api.wire import networks as wire
from engine.events import EventBus
from engine.networks.cleanup import purge_host_state
from engine.networks.model import ContainerInfo
from engine.networks.service import NetworkService
from tests.integration.test_net_kernel import FakeContainers, Host, open_service
from tests.support.daemon import DOCKER_CLI

pytestmark = pytest.mark.integration

DOCKER = DOCKER_CLI

ping = Router()


@ping.route("GET", "/_ping")
async def _ping(req: Request, engine: object) -> RawResponse:
    return RawResponse(b"OK")


@attrs.define
class FakeEngine:
    networks: NetworkService
    events: EventBus = attrs.field(factory=EventBus)


@pytest.fixture
def short_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (they make bridges and nftables rules)")
    if not os.access(DOCKER, os.X_OK):
        pytest.fail(f"the docker CLI ({DOCKER}) is missing: it is the compatibility client")
    root = Path(tempfile.mkdtemp(prefix="netapi-", dir="/tmp"))  # unix socket paths are short
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@attrs.define
class Api:
    sock: Path
    config: Path
    service: NetworkService
    containers: FakeContainers

    async def docker(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(self.config),
               "DOCKER_CLI_HINTS": "false"}
        env.pop("DOCKER_CONTEXT", None)
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [DOCKER, *args], capture_stdout=True, capture_stderr=True, check=False, env=env)
        if ok:
            assert result.returncode == 0, (args, result.stderr.decode())
        return result


@pytest.fixture
async def api(short_root: Path) -> AsyncIterator[Api]:
    host = Host(f"mt{secrets.token_hex(3)[:5]}", short_root)
    containers = FakeContainers()
    async with trio.open_nursery() as nursery:
        service = await open_service(host, nursery, containers=containers)
        engine = FakeEngine(service)
        server = APIServer(route_table([ping, handlers.router]), engine)  # type: ignore[arg-type]
        sock = short_root / "api.sock"
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))
        config = short_root / "cfg"
        config.mkdir()
        yield Api(sock, config, service, containers)
        nursery.cancel_scope.cancel()
    service.ports.close()
    purge_host_state(host.prefix, host.exec_root)


async def test_docker_network_commands(api: Api) -> None:
    listed = (await api.docker("network", "ls", "--format", "{{.Name}}|{{.Driver}}|{{.Scope}}")
              ).stdout.decode().split()
    assert sorted(listed) == ["bridge|bridge|local", "host|host|local", "none|null|local"]

    out = (await api.docker("network", "create", "--subnet", "10.213.60.0/24", "--label", "a=b",
                            "-o", "com.docker.network.driver.mtu=1400", "apps")).stdout.decode()
    network_id = out.strip()
    assert len(network_id) == 64
    [data] = json.loads((await api.docker("network", "inspect", "apps")).stdout)
    assert data["Id"] == network_id
    assert data["Driver"] == "bridge"
    assert data["Scope"] == "local"
    assert data["EnableIPv4"] is True
    assert data["IPAM"] == {"Driver": "default", "Options": {},
                            "Config": [{"Subnet": "10.213.60.0/24", "Gateway": "10.213.60.1"}]}
    assert data["Options"] == {"com.docker.network.driver.mtu": "1400"}
    assert data["Labels"] == {"a": "b"}
    assert data["Containers"] == {}
    # the generic inspect finds networks too
    assert (await api.docker("inspect", "-f", "{{.Name}}", "apps")).stdout == b"apps\n"

    result = await api.docker("network", "create", "apps", ok=False)
    assert b"network with name apps already exists" in result.stderr
    result = await api.docker("network", "rm", "bridge", ok=False)
    assert b"bridge is a pre-defined network and cannot be removed" in result.stderr
    # --ipv6 without a subnet: a /64 of the daemon's unique local prefix, beside IPv4
    await api.docker("network", "create", "--ipv6", "v6")
    [data] = json.loads((await api.docker("network", "inspect", "v6")).stdout)
    assert data["EnableIPv6"] is True
    v4, v6 = data["IPAM"]["Config"]
    assert "." in v4["Subnet"]
    assert v6["Subnet"].startswith("fd")
    assert v6["Subnet"].endswith("::/64")
    await api.docker("network", "rm", "v6")
    result = await api.docker("network", "inspect", "nosuch", ok=False)
    assert result.returncode == 1

    # a "running" container on it: inspect lists it, rm refuses, connect/disconnect work
    networking, _ = api.service.validate_container_networking(network_mode="apps")
    info = ContainerInfo(secrets.token_hex(32), "web", "web", networking, running=True)
    api.containers.infos[info.id] = info
    attachment = await api.service.attach(info)
    [data] = json.loads((await api.docker("network", "inspect", "apps")).stdout)
    entry = data["Containers"][info.id]
    assert entry["Name"] == "web"
    assert entry["IPv4Address"] == attachment.record.endpoints[0].address
    result = await api.docker("network", "rm", "apps", ok=False)
    assert f"error while removing network: network apps id {network_id} has active endpoints" \
        in result.stderr.decode()
    await api.docker("network", "connect", "--alias", "api", "bridge", "web")
    assert list(api.containers.find("web").networking.networks)[-1] == \
        api.service.get("bridge").id
    result = await api.docker("network", "connect", "bridge", "web", ok=False)
    assert b"already exists in network bridge" in result.stderr
    await api.docker("network", "disconnect", "bridge", "web")
    result = await api.docker("network", "connect", "bridge", "nobody", ok=False)
    assert b"No such container: nobody" in result.stderr
    await api.service.detach(info.id)

    await api.docker("network", "create", "spare")
    out = (await api.docker("network", "prune", "-f")).stdout.decode()
    assert out.splitlines()[0] == "Deleted Networks:"
    assert sorted(out.split()[2:]) == ["apps", "spare"]
    listed = (await api.docker("network", "ls", "-q")).stdout.decode().split()
    assert len(listed) == 3


def test_endpoint_settings_parse() -> None:
    request = wire.parse_endpoint_request({"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.0.5"},
                                           "MacAddress": "02:42:0a:00:00:05", "NetworkID": "x"})
    assert request.aliases == ("a",)
    assert request.ipv4_address == "10.0.0.5"
    assert wire.parse_endpoints_config({"EndpointsConfig": {"n": None}})["n"].aliases == ()
