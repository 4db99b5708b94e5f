"""`GET /system/df` through the docker CLI (`system df`, `-v`), docker-py's `df()` and moor
(and `moor history`, the other new moor command).

A private daemon, so every total is known: two images sharing busybox's one layer, a
stopped container that wrote 100000 bytes into its writable layer and 5000 into a
volume, a running one that wrote nothing, an unused volume.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import docker
import pytest

from tests.support.daemon import REPO, Moord

WRITTEN = 100_000
IN_VOLUME = 5_000


@pytest.fixture
def setup(fresh_moord: Callable[[], Moord]) -> Moord:
    d = fresh_moord()
    d.start()
    d.import_busybox()
    tarball = d.root / "busybox.tar"
    d.docker("import", "--change", 'CMD ["true"]', str(tarball), "other:latest")
    d.docker("volume", "create", "used")
    d.docker("volume", "create", "idle")
    d.docker("run", "--name", "writer", "-v", "used:/data", "busybox", "sh", "-c",
             f"head -c {WRITTEN} /dev/zero > /big; head -c {IN_VOLUME} /dev/zero > /data/f")
    d.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "120")
    return d


def _get(d: Moord, path: str) -> tuple[int, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(d.socket_path))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, json.loads(body)


def test_df_numbers_through_docker_py(setup: Moord) -> None:
    d = setup
    client = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        df = client.df()
        busybox = client.images.get("busybox").attrs
    finally:
        client.close()
    layer = busybox["Size"]
    assert layer > 1_000_000
    # one layer on disk, listed by both images
    assert df["LayersSize"] == layer
    images = {tuple(i["RepoTags"]): i for i in df["Images"]}
    assert set(images) == {("busybox:latest",), ("other:latest",)}
    assert images[("busybox:latest",)]["Containers"] == 2
    assert images[("other:latest",)]["Containers"] == 0
    for image in images.values():
        assert image["Size"] == layer
        assert image["SharedSize"] == layer
    containers = {c["Names"][0]: c for c in df["Containers"]}
    assert set(containers) == {"/writer", "/sleeper"}
    assert containers["/writer"]["SizeRw"] == WRITTEN
    assert containers["/writer"]["SizeRootFs"] == WRITTEN + layer
    assert containers["/sleeper"]["SizeRw"] == 0
    assert containers["/sleeper"]["SizeRootFs"] == layer
    assert containers["/sleeper"]["State"] == "running"
    volumes = {v["Name"]: v["UsageData"] for v in df["Volumes"]}
    assert volumes == {"used": {"Size": IN_VOLUME, "RefCount": 1},
                       "idle": {"Size": 0, "RefCount": 0}}
    assert df["BuildCache"] == []


def test_df_type_filter(setup: Moord) -> None:
    status, body = _get(setup, "/v1.50/system/df?type=volume&type=container")
    assert status == 200
    assert body["Images"] is None
    assert body["LayersSize"] == 0
    assert body["BuildCache"] is None
    assert len(body["Containers"]) == 2
    assert {v["Name"] for v in body["Volumes"]} == {"used", "idle"}
    status, body = _get(setup, "/v1.50/system/df?type=image")
    assert status == 200
    assert len(body["Images"]) == 2
    assert body["Containers"] is None
    assert body["Volumes"] is None
    status, body = _get(setup, "/v1.50/system/df?type=bogus")
    assert status == 400
    assert body["message"] == "unknown object type: bogus"
    # before API 1.42 the parameter did not exist: everything comes back
    status, body = _get(setup, "/v1.41/system/df?type=image")
    assert status == 200
    assert body["Containers"] is not None
    assert all(i["VirtualSize"] == i["Size"] for i in body["Images"])


def _columns(text: str) -> dict[str, list[str]]:
    """`system df` summary rows by TYPE: columns split on runs of 2+ spaces."""
    rows = {}
    for line in text.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def test_docker_system_df(setup: Moord) -> None:
    d = setup
    layer = json.loads(d.docker("image", "inspect", "busybox").stdout)[0]["Size"]
    mb = f"{layer / 1e6:.4g}MB"
    rows = _columns(d.docker("system", "df").stdout)
    # the CLI counts as used only the unshared bytes of images with containers: the
    # shared layer shows as reclaimable, as it does with dockerd
    assert rows["Images"] == ["2", "1", mb, f"{mb} (100%)"]
    assert rows["Containers"] == ["2", "1", "100kB", "100kB (100%)"]
    assert rows["Local Volumes"] == ["2", "1", "5kB", "0B (0%)"]
    assert rows["Build Cache"] == ["0", "0", "0B", "0B"]
    verbose = d.docker("system", "df", "-v").stdout
    assert "Images space usage:" in verbose
    lines = verbose.splitlines()
    busybox = next(line.split() for line in lines if line.startswith("busybox "))
    # REPOSITORY TAG ID CREATED(…ago) SIZE SHARED UNIQUE CONTAINERS
    assert busybox[-1] == "2"
    assert busybox[-2] == "0B"  # unique size
    assert busybox[-3] == mb  # shared size
    writer = next(line for line in lines if line.endswith(" writer"))
    assert "   1   " in writer  # one local volume
    assert " 100kB " in writer
    used = next(line.split() for line in lines if line.startswith("used "))
    assert used == ["used", "1", "5kB"]
    idle = next(line.split() for line in lines if line.startswith("idle "))
    assert idle == ["idle", "0", "0B"]
    assert "Build cache usage: 0B" in verbose
    # moor prints what docker prints
    moor = subprocess.run([sys.executable, "-m", "engine.cli", "system", "df"], env=d.env,
                          capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert moor == d.docker("system", "df").stdout


def test_df_after_removal(setup: Moord) -> None:
    d = setup
    d.docker("rm", "-f", "writer", "sleeper")
    rows = _columns(d.docker("system", "df").stdout)
    assert rows["Containers"] == ["0", "0", "0B", "0B"]
    assert rows["Images"][:2] == ["2", "0"]
    assert rows["Images"][3].endswith("(100%)")
    assert rows["Local Volumes"] == ["2", "0", "5kB", "5kB (100%)"]


def test_moor_history_matches_docker(setup: Moord) -> None:
    d = setup

    def moor(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=d.env,
                              capture_output=True, text=True, cwd=REPO, check=True).stdout

    for args in (["history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
                  "busybox"],
                 ["history", "-q", "busybox"],
                 ["history", "--no-trunc", "-H=false", "other"],
                 ["image", "history", "--format", "json", "--human=false", "other"]):
        assert moor(*args) == d.docker(*args).stdout, args
    table = moor("history", "busybox").splitlines()
    assert table[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert table[1].endswith("Imported from -")
