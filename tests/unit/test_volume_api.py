"""The volumes API: handlers through the router, then docker, the SDK and moor over a socket.

The volume service is real (local driver, temporary data root); containers are
stood in for by `claim` calls, which is all the volume side sees of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import attrs
import pytest
import trio

from engine.api.handlers import volumes as handlers
from engine.api.http import EmptyResponse, JSONResponse, RawResponse, Request, Response
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.api.wire.volumes import mount_point_json, mounts_json
from engine.errors import Conflict, InvalidParameter, NotFound, Unsupported
from engine.events import EventBus
from engine.volumes.model import MountPoint
from engine.volumes.parse import parse_mount_requests
from engine.volumes.service import VolumeService
from volume_drivers.local import LocalDriver

pytestmark = pytest.mark.needs_root("volumes are made as root")

REPO = Path(__file__).resolve().parents[2]
C1 = "ab" * 32


@attrs.define
class FakeEngine:
    """What the volume handlers use of the engine."""

    volumes: VolumeService
    events: EventBus


@attrs.define
class Body:
    data: bytes
    sent: bool = False

    async def next_chunk(self) -> bytes | None:
        if self.sent:
            return None
        self.sent = True
        return self.data


@pytest.fixture
async def engine(tmp_path: Path) -> FakeEngine:
    events = EventBus()
    service = await VolumeService.open(tmp_path, {"local": LocalDriver(tmp_path / "volumes")},
                                       events=events, durable=False)
    return FakeEngine(service, events)


async def call(engine: FakeEngine, method: str, target: str, body: Any = None,
               api_version: str = "1.50") -> Response:
    path, _, query_text = target.partition("?")
    found = handlers.router.match(method, path)
    assert found is not None, f"no route for {method} {path}"
    handler, params = found
    data = json.dumps(body).encode() if body is not None else b""
    req = Request(method, path, parse_qs(query_text, keep_blank_values=True), {}, api_version,
                  Body(data), params)
    return await handler(req, engine)  # type: ignore[arg-type]


def body_of(resp: Response) -> Any:
    assert isinstance(resp, JSONResponse), resp
    return resp.body


def filters(doc: dict[str, list[str]]) -> str:
    return "filters=" + quote(json.dumps(doc))


@pytest.mark.parametrize(
    ("method", "path", "handler", "name"),
    [
        ("POST", "/volumes/create", "create", None),
        ("GET", "/volumes", "list_volumes", None),
        ("GET", "/volumes/", "list_volumes", None),
        ("POST", "/volumes/prune", "prune", None),
        ("GET", "/volumes/data", "inspect", "data"),
        ("DELETE", "/volumes/data", "remove", "data"),
        ("PUT", "/volumes/data", "update", "data"),
    ],
)
def test_routes(method: str, path: str, handler: str, name: str | None) -> None:
    found = handlers.router.match(method, path)
    assert found is not None
    assert found[0].__name__ == handler
    assert found[1].get("name") == name


async def test_create_inspect_list_remove(engine: FakeEngine, tmp_path: Path) -> None:
    resp = await call(engine, "POST", "/volumes/create",
                      {"Name": "data", "Driver": "local", "DriverOpts": {"uid": "1000"},
                       "Labels": {"a": "b"}})
    assert isinstance(resp, JSONResponse)
    assert resp.status == 201
    volume = resp.body
    assert volume == {
        "CreatedAt": volume["CreatedAt"],
        "Driver": "local",
        "Labels": {"a": "b"},
        "Mountpoint": str(tmp_path / "volumes" / "data" / "_data"),
        "Name": "data",
        "Options": {"uid": "1000"},
        "Scope": "local",
    }
    assert len(volume["CreatedAt"]) == 20
    assert volume["CreatedAt"].endswith("Z")
    assert body_of(await call(engine, "GET", "/volumes/data")) == volume
    listing = body_of(await call(engine, "GET", "/volumes"))
    assert listing == {"Volumes": [volume], "Warnings": []}
    resp = await call(engine, "DELETE", "/volumes/data")
    assert isinstance(resp, EmptyResponse)
    assert resp.status == 204
    with pytest.raises(NotFound, match="get data: no such volume"):
        await call(engine, "GET", "/volumes/data")
    with pytest.raises(NotFound):
        await call(engine, "DELETE", "/volumes/data")
    assert isinstance(await call(engine, "DELETE", "/volumes/data?force=1"), EmptyResponse)


async def test_create_errors(engine: FakeEngine) -> None:
    with pytest.raises(InvalidParameter, match='includes invalid characters'):
        await call(engine, "POST", "/volumes/create", {"Name": "/abs"})
    with pytest.raises(InvalidParameter, match="invalid type for Labels"):
        await call(engine, "POST", "/volumes/create", {"Name": "x1", "Labels": ["a"]})
    with pytest.raises(NotFound, match="plugin"):
        await call(engine, "POST", "/volumes/create", {"Name": "x1", "Driver": "nfs-plugin"})
    with pytest.raises(Unsupported):
        await call(engine, "POST", "/volumes/create", {"Name": "x1", "ClusterVolumeSpec": {"a": 1}})
    assert body_of(await call(engine, "GET", "/volumes"))["Volumes"] == []


async def test_filters_in_use_and_prune(engine: FakeEngine) -> None:
    for name in ("used", "idle"):
        await call(engine, "POST", "/volumes/create", {"Name": name, "Labels": {"n": name}})
    anon = body_of(await call(engine, "POST", "/volumes/create", {}))
    assert anon["Labels"] == {"com.docker.volume.anonymous": ""}
    await engine.volumes.claim(C1, parse_mount_requests(binds=["used:/u"]))

    async def names(query: str) -> list[str]:
        listing = body_of(await call(engine, "GET", f"/volumes?{query}"))
        return [v["Name"] for v in listing["Volumes"]]

    assert await names(filters({"dangling": ["true"]})) == sorted(["idle", anon["Name"]])
    assert await names(filters({"label": ["n=used"]})) == ["used"]
    assert await names(filters({"name": ["dl"]})) == ["idle"]
    assert await names(filters({"driver": ["local"], "name": ["used"]})) == ["used"]
    with pytest.raises(InvalidParameter, match="invalid filter 'until'"):
        await names(filters({"until": ["1h"]}))
    with pytest.raises(Conflict, match=f"remove used: volume is in use - \\[{C1}\\]"):
        await call(engine, "DELETE", "/volumes/used?force=true")
    report = body_of(await call(engine, "POST", "/volumes/prune"))
    assert report == {"VolumesDeleted": [anon["Name"]], "SpaceReclaimed": 0}
    # before API 1.42 prune took every unused volume
    report = body_of(await call(engine, "POST", "/volumes/prune", api_version="1.41"))
    assert report["VolumesDeleted"] == ["idle"]
    assert await names("") == ["used"]
    actions = [e.action for e in engine.events.history]
    assert actions.count("prune") == 2
    assert actions.count("destroy") == 2


def test_mounts_json() -> None:
    volume = MountPoint(type="volume", destination="/data", source="/v/x/_data", name="x",
                        driver="local", mode="z", rw=True)
    bind = MountPoint(type="bind", destination="/h", source="/host", mode="ro", rw=False,
                      propagation="rprivate")
    hidden = MountPoint(type="tmpfs", destination="/run", listed=False)
    assert mount_point_json(volume) == {
        "Type": "volume", "Name": "x", "Source": "/v/x/_data", "Destination": "/data",
        "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert list(mount_point_json(bind)) == ["Type", "Source", "Destination", "Mode", "RW",
                                            "Propagation"]
    assert mounts_json([volume, hidden, bind]) == [mount_point_json(volume),
                                                   mount_point_json(bind)]


# the docker CLI, the SDK and moor over a real socket ------------------------------------------

ping = Router()


@ping.route("GET", "/_ping")
async def _ping(req: Request, engine: Any) -> RawResponse:
    return RawResponse(b"OK")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="volapi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def run(argv: list[str], sock: Path, cfg: Path, stdin: bytes = b""
              ) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "MOORAGE_HOST": f"unix://{sock}",
           "DOCKER_CONFIG": str(cfg), "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    result: subprocess.CompletedProcess[bytes] = await trio.run_process(
        argv, stdin=stdin, capture_stdout=True, capture_stderr=True, check=False, env=env,
        cwd=REPO)
    return result


@pytest.mark.needs_tools("docker")
async def test_docker_sdk_and_moor(engine: FakeEngine, short_dir: Path) -> None:
    sock = short_dir / "api.sock"
    cfg = short_dir / "cfg"
    cfg.mkdir()
    server = APIServer(route_table([ping, handlers.router]), engine)  # type: ignore[arg-type]

    async def ok(*argv: str, stdin: bytes = b"") -> str:
        result = await run(list(argv), sock, cfg, stdin)
        assert result.returncode == 0, (argv, result.stderr.decode())
        return result.stdout.decode()

    async def fails(*argv: str) -> str:
        result = await run(list(argv), sock, cfg)
        assert result.returncode != 0, argv
        return result.stderr.decode()

    moor = [sys.executable, "-m", "engine.cli"]
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))

        # docker CLI
        assert await ok("docker", "volume", "create", "--label", "x=1", "-o", "mode=0777",
                        "dv1") == "dv1\n"
        assert await ok("docker", "volume", "ls") == "DRIVER    VOLUME NAME\nlocal     dv1\n"
        out = await ok("docker", "volume", "inspect", "--format",
                       "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels.x}} {{.Options.mode}}", "dv1")
        assert out == "dv1 local local 1 0777\n"
        [info] = json.loads(await ok("docker", "volume", "inspect", "dv1"))
        assert info["Mountpoint"].endswith("/volumes/dv1/_data")
        assert "no such volume" in await fails("docker", "volume", "inspect", "nope")
        err = await fails("docker", "volume", "create", "-o", "foo=1", "bad1")
        assert err == 'Error response from daemon: create bad1: invalid option: "foo"\n'
        anon = (await ok("docker", "volume", "create")).strip()
        assert len(anon) == 64
        out = await ok("docker", "volume", "ls", "-q", "--filter", "dangling=true")
        assert out.split() == sorted([anon, "dv1"])
        out = await ok("docker", "volume", "prune", "-f")
        assert out == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n"
        await engine.volumes.claim(C1, parse_mount_requests(binds=["dv1:/d"]))
        assert f"volume is in use - [{C1}]" in await fails("docker", "volume", "rm", "dv1")

        # the SDK, in a thread (it is synchronous)
        def sdk() -> tuple[str, list[str], dict[str, Any]]:
            import docker

            client = docker.DockerClient(base_url=f"unix://{sock}", version="1.45")
            try:
                made = client.volumes.create("sdk1", driver="local", labels={"k": "v"})
                names = sorted(v.name for v in client.volumes.list(filters={"label": "k=v"}))
                pruned = client.volumes.prune(filters={"label": "k=v", "all": "true"})
                return made.attrs["Mountpoint"], names, pruned
            finally:
                client.close()

        mountpoint, names, pruned = await trio.to_thread.run_sync(sdk)
        assert mountpoint.endswith("/volumes/sdk1/_data")
        assert names == ["sdk1"]
        assert pruned["VolumesDeleted"] == ["sdk1"]

        # moor
        assert await ok(*moor, "volume", "create", "-o", "uid=1000", "mv1") == "mv1\n"
        out = await ok(*moor, "volume", "ls")
        assert out == "DRIVER    VOLUME NAME\nlocal     dv1\nlocal     mv1\n"
        out = await ok(*moor, "volume", "inspect", "-f", "{{.Options.uid}}", "mv1")
        assert out == "1000\n"
        assert "no such volume" in await fails(*moor, "volume", "inspect", "nope")
        assert "volume is in use" in await fails(*moor, "volume", "rm", "dv1")
        out = await ok(*moor, "volume", "prune", "-a", stdin=b"y\n")
        assert "Deleted Volumes:\nmv1\n" in out
        assert await ok(*moor, "volume", "rm", "-f", "gone") == "gone\n"
        assert await ok("docker", "volume", "ls", "-q") == "dv1\n"
        nursery.cancel_scope.cancel()
