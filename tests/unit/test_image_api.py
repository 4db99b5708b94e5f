"""The images API: handlers through the router, then the real docker CLI over a socket.

The engine is real where it matters (the image store on a temporary directory) and a
stand-in for the container manager, which only has to say who uses an image.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from engine.api.handlers import images as handlers
from engine.api.http import EmptyResponse, JSONResponse, RawResponse, Request, Response
from engine.api.router import Router, route_table
from engine.api.server import APIServer
from engine.config import DaemonConfig
from engine.engine import Engine
from engine.errors import InvalidParameter, NotFound, SystemFailure, Unsupported
from engine.events import EventBus
from engine.images.store import ImageStore
from engine.registry.service import RegistryService
from engine.timestamps import filter_time

pytestmark = pytest.mark.needs_root("layer unpacking needs root")


def rootfs(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


TARBALL = rootfs(("bin/sh", b"shell"), ("etc/hostname", b"box\n"))


@attrs.define
class FakeContainers:
    users: dict[str, list[tuple[str, bool]]] = attrs.field(factory=dict)

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        return self.users.get(image_id, [])


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
async def engine(tmp_path: Path) -> Engine:
    store = await ImageStore.open(tmp_path / "images")
    config = DaemonConfig(data_root=tmp_path)
    return Engine(config=config, host=None,  # type: ignore[arg-type]
                  images=store, containers=FakeContainers(),  # type: ignore[arg-type]
                  events=EventBus(), volumes=None,  # type: ignore[arg-type]
                  registry=RegistryService(config, store))


async def call(engine: Engine, method: str, target: str, body: bytes = b"",
               api_version: str = "1.50") -> Response:
    path, _, query_text = target.partition("?")
    from urllib.parse import parse_qs

    query = parse_qs(query_text, keep_blank_values=True)
    found = handlers.router.match(method, path)
    assert found is not None, f"no route for {method} {path}"
    handler, params = found
    req = Request(method, path, query, {}, api_version, Body(body), params)
    return await handler(req, engine)


def body_of(resp: Response) -> Any:
    assert isinstance(resp, JSONResponse), resp
    return resp.body


async def import_image(engine: Engine, repo: str = "busybox", data: bytes = TARBALL,
                       extra: str = "") -> str:
    resp = await call(engine, "POST",
                      f"/images/create?fromSrc=-&repo={repo}&changes=CMD%20%5B%22sh%22%5D{extra}",
                      data)
    assert isinstance(resp, RawResponse)
    assert resp.content_type == "application/json"
    line = json.loads(resp.body)
    assert resp.body.endswith(b"\r\n")
    status: str = line["status"]
    assert status.startswith("sha256:")
    return status


# routing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "handler", "name"),
    [
        ("GET", "/images/json", "list_images", None),
        ("GET", "/images/search", "search", None),
        ("GET", "/images/json/json", "inspect", "json"),
        ("GET", "/images/myreg:5000/a/b:1/json", "inspect", "myreg:5000/a/b:1"),
        ("GET", "/images/a/json/history", "history", "a/json"),
        ("POST", "/images/create", "create", None),
        ("POST", "/images/prune", "prune", None),
        ("POST", "/images/x/prune/tag", "tag", "x/prune"),
        ("DELETE", "/images/myreg:5000/a/b", "remove", "myreg:5000/a/b"),
    ],
)
def test_routes(method: str, path: str, handler: str, name: str | None) -> None:
    found = handlers.router.match(method, path)
    assert found is not None
    assert found[0].__name__ == handler
    assert found[1].get("name") == name


# handlers ----------------------------------------------------------------------------


async def test_import_list_inspect_history(engine: Engine) -> None:
    image_id = await import_image(engine, extra="&message=hello&tag=1.0")
    [summary] = body_of(await call(engine, "GET", "/images/json"))
    assert summary == {
        "Containers": -1,
        "Created": summary["Created"],
        "Id": image_id,
        "Labels": None,
        "ParentId": "",
        "RepoDigests": [],
        "RepoTags": ["busybox:1.0"],
        "SharedSize": -1,
        "Size": 9,
    }
    old = body_of(await call(engine, "GET", "/images/json", api_version="1.41"))[0]
    assert old["VirtualSize"] == 9

    info = body_of(await call(engine, "GET", "/images/busybox:1.0/json"))
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["busybox:1.0"]
    assert info["Comment"] == "hello"
    assert info["Created"].endswith("Z")
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Config"]["Entrypoint"] is None
    assert info["Config"]["Env"] is None
    assert info["Config"]["Labels"] is None
    assert info["Config"]["Hostname"] == ""
    assert info["RootFS"]["Type"] == "layers"
    assert len(info["RootFS"]["Layers"]) == 1
    assert info["GraphDriver"]["Name"] == "overlay"
    upper = trio.Path(info["GraphDriver"]["Data"]["UpperDir"], "etc/hostname")
    assert await upper.read_bytes() == b"box\n"
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    assert "VirtualSize" not in info
    assert "ContainerConfig" not in info
    assert "ContainerConfig" in body_of(
        await call(engine, "GET", "/images/busybox:1.0/json", api_version="1.43"))

    [entry] = body_of(await call(engine, "GET", f"/images/{image_id[7:19]}/history"))
    assert entry["Id"] == image_id
    assert entry["Tags"] == ["busybox:1.0"]
    assert entry["Comment"] == "hello"
    assert entry["CreatedBy"] == ""
    assert entry["Size"] == 9


async def test_import_message_defaults_like_docker(engine: Engine) -> None:
    await import_image(engine)
    info = body_of(await call(engine, "GET", "/images/busybox/json"))
    assert info["Comment"] == "Imported from -"


async def test_list_filters(engine: Engine) -> None:
    a = await import_image(engine, "alpha", extra="&changes=LABEL%20team%3Dred")
    await trio.sleep(0.01)
    b = await import_image(engine, "myreg:5000/beta")
    await trio.sleep(0.01)
    c = await import_image(engine, "", data=rootfs(("x", b"")))

    async def ids(query: str) -> list[str]:
        return [s["Id"] for s in body_of(await call(engine, "GET", f"/images/json?{query}"))]

    def f(doc: dict[str, Any]) -> str:
        from urllib.parse import quote

        return "filters=" + quote(json.dumps(doc))

    assert await ids("") == [c, b, a]
    assert await ids(f({"dangling": ["true"]})) == [c]
    assert await ids(f({"dangling": {"false": True}})) == [b, a]
    assert await ids(f({"label": ["team=red"]})) == [a]
    assert await ids(f({"label": ["team=blue"]})) == []
    assert await ids(f({"reference": ["alp*"]})) == [a]
    assert await ids(f({"reference": ["myreg:5000/*"]})) == [b]
    assert await ids(f({"reference": ["*:latest"]})) == [a]  # `*` stops at `/`
    assert await ids(f({"before": ["myreg:5000/beta"]})) == [a]
    assert await ids(f({"since": ["alpha"]})) == [c, b]
    assert await ids(f({"until": ["3000-01-01T00:00:00Z"]})) == [c, b, a]
    assert await ids(f({"until": ["1000"]})) == []
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        await ids(f({"colour": ["red"]}))
    with pytest.raises(NotFound):
        await ids(f({"before": ["ghost"]}))
    old = body_of(await call(engine, "GET", "/images/json", api_version="1.41"))
    assert old[0]["RepoTags"] == ["<none>:<none>"]
    assert old[0]["RepoDigests"] == ["<none>@<none>"]


async def streamed(resp: Response) -> list[Any]:
    """The JSON lines a StreamResponse writes."""
    from engine.api.http import StreamResponse

    assert isinstance(resp, StreamResponse), resp
    sent: list[bytes] = []

    class Writer:
        async def send(self, data: bytes) -> None:
            sent.append(data)

    await resp.produce(Writer())
    return [json.loads(line) for line in b"".join(sent).splitlines() if line.strip()]


@pytest.mark.parametrize(("body", "words"), [
    (b"abc", "invalid archive: not a readable tar archive"),
    (b"", "invalid archive"),
    (rootfs(("hello", b"world")), "invalid archive"),
])
async def test_a_failed_load_is_a_200_with_an_error_line(engine: Engine, body: bytes,
                                                          words: str) -> None:
    """dockerd answers a load it cannot do with 200 and an `errorDetail` line, and
    docker-py raises ImageLoadError only for that line, never for a status."""
    from engine.api.http import StreamResponse

    resp = await call(engine, "POST", "/images/load", body)
    assert isinstance(resp, StreamResponse)
    assert resp.status == 200
    [line] = await streamed(resp)
    assert set(line) == {"errorDetail", "error"}
    assert line["error"] == line["errorDetail"]["message"]
    assert words in line["error"]
    assert "/tmp" not in line["error"]
    assert str(engine.config.data_root) not in line["error"]


async def test_import_errors_keep_their_status(engine: Engine) -> None:
    with pytest.raises(InvalidParameter, match="add is not a valid change command"):
        await call(engine, "POST", "/images/create?fromSrc=-&changes=ADD%20a%20b", TARBALL)
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        await call(engine, "POST", "/images/create?fromSrc=-&repo=Bad", TARBALL)
    with pytest.raises(InvalidParameter, match="invalid layer archive"):
        await call(engine, "POST", "/images/create?fromSrc=-", b"garbage" * 200)
    with pytest.raises(Unsupported, match="URL"):
        await call(engine, "POST", "/images/create?fromSrc=http://example.com/x.tar")
    with pytest.raises(InvalidParameter, match="fromImage or fromSrc"):
        await call(engine, "POST", "/images/create")


async def test_pull_from_nowhere_is_a_clear_error(engine: Engine) -> None:
    """Nothing listens on 127.0.0.1:1: the error names the endpoints tried, before any 200."""
    with pytest.raises(SystemFailure) as info:
        await call(engine, "POST", "/images/create?fromImage=127.0.0.1:1/busybox&tag=latest")
    assert "http://127.0.0.1:1/v2/busybox/manifests/latest" in info.value.message
    with pytest.raises(InvalidParameter):
        await call(engine, "POST", "/images/create?fromImage=Busybox")


async def test_tag_delete_prune(engine: Engine) -> None:
    image_id = await import_image(engine)
    resp = await call(engine, "POST", "/images/busybox/tag?repo=myreg:5000/x&tag=v1")
    assert isinstance(resp, EmptyResponse)
    assert resp.status == 201
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        await call(engine, "POST", "/images/busybox/tag?repo=x&tag=bad%20tag")
    with pytest.raises(NotFound, match="No such image: ghost:latest"):
        await call(engine, "POST", "/images/ghost/tag?repo=x")

    out = body_of(await call(engine, "DELETE", "/images/myreg:5000/x:v1"))
    assert out == [{"Untagged": "myreg:5000/x:v1"}]

    engine.containers.users[image_id] = [("c" * 64, True)]  # type: ignore[attr-defined]
    out = body_of(await call(engine, "DELETE", "/images/busybox?force=1"))
    assert out == [{"Untagged": "busybox:latest"}]
    report = body_of(await call(engine, "POST", "/images/prune"))
    assert report == {"ImagesDeleted": None, "SpaceReclaimed": 0}

    engine.containers.users.clear()  # type: ignore[attr-defined]
    report = body_of(await call(engine, "POST", "/images/prune"))
    assert report["ImagesDeleted"][0] == {"Deleted": image_id}
    assert report["SpaceReclaimed"] == 9
    assert body_of(await call(engine, "GET", "/images/json")) == []


async def test_search_is_501(engine: Engine) -> None:
    with pytest.raises(Unsupported, match="search"):
        await call(engine, "GET", "/images/search?term=busybox")


def test_go_path_match_and_timestamps() -> None:
    m = handlers.go_path_match
    assert m("busy*", "busybox")
    assert not m("*", "a/b")
    assert m("*/*", "a/b")
    assert m("b[a-u]sy?ox", "busybox")
    assert not m("b[^u]sy", "busy")
    assert m("a\\*", "a*")
    assert not m("a\\*", "ab")
    with pytest.raises(InvalidParameter):
        m("[", "x")
    now = filter_time("0")
    assert now.timestamp() == 0
    assert filter_time("2020-01-02T03:04:05Z").year == 2020
    assert filter_time("2020-01-02").day == 2
    import datetime as dt

    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert filter_time("1h30m", base) == base - dt.timedelta(minutes=90)


# the docker CLI over a real socket ------------------------------------------------------

ping = Router()


@ping.route("GET", "/_ping")
async def _ping(req: Request, engine: Engine) -> RawResponse:
    return RawResponse(b"OK")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="imgapi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def docker(sock: Path, config_dir: Path, *args: str, stdin: bytes = b""
                 ) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(config_dir),
           "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_CONTEXT", None)
    result: subprocess.CompletedProcess[bytes] = await trio.run_process(
        ["docker", *args], stdin=stdin, capture_stdout=True, capture_stderr=True, check=False,
        env=env)
    return result


@pytest.mark.needs_tools("docker")
async def test_docker_cli(engine: Engine, short_dir: Path, tmp_path: Path) -> None:
    sock = short_dir / "api.sock"
    server = APIServer(route_table([ping, handlers.router]), engine)
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(TARBALL)
    cfg = short_dir / "cfg"
    cfg.mkdir()

    async def ok(*args: str) -> str:
        result = await docker(sock, cfg, *args)
        assert result.returncode == 0, (args, result.stderr.decode())
        return result.stdout.decode()

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: server.serve_unix(sock, task_status=task_status))

        out = await ok("import", "--change", 'CMD ["sh"]', "-m", "from the cli", str(tarball),
                       "busybox:latest")
        image_id = out.strip()
        assert image_id.startswith("sha256:")
        out = await ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}")
        assert out.split() == ["busybox:latest", image_id[7:19], "9B"]
        out = await ok("image", "inspect", "--format", "{{json .Config.Cmd}} {{.Comment}}",
                       "busybox")
        assert out.strip() == '["sh"] from the cli'
        await ok("tag", "busybox", "localhost:5000/mine:1")
        out = await ok("history", "--format", "{{.Comment}}", "localhost:5000/mine:1")
        assert out.strip() == "from the cli"

        result = await docker(sock, cfg, "rmi", image_id[7:19])
        assert result.returncode != 0
        assert b"image is referenced in multiple repositories" in result.stderr

        out = await ok("rmi", "localhost:5000/mine:1")
        assert out.strip() == "Untagged: localhost:5000/mine:1"

        result = await docker(sock, cfg, "pull", "127.0.0.1:1/alpine")
        assert result.returncode != 0
        assert b"127.0.0.1:1" in result.stderr, result.stderr

        result = await docker(sock, cfg, "image", "inspect", "nope")
        assert result.returncode != 0
        assert b"No such image: nope:latest" in result.stderr, result.stderr

        result = await docker(sock, cfg, "import", "--change", "RUN x", str(tarball))
        assert result.returncode != 0
        assert b"run is not a valid change command" in result.stderr

        out = await ok("rmi", "busybox")
        assert out.split("\n")[:2] == ["Untagged: busybox:latest", f"Deleted: {image_id}"]
        out = await ok("images", "-q")
        assert out.strip() == ""
        nursery.cancel_scope.cancel()

