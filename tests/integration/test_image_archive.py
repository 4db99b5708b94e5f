"""`docker save` / `docker load` against moord, and other OCI tools reading what it writes.

These tests remove busybox and load it back, so they run on a private moord of their
own rather than the session one. skopeo (1.9) is the outside witness: it reads the
archive as a docker-archive and as an OCI archive, and writes the OCI archives
(gzip-compressed layers) that moord then loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.daemon import DOCKER_CLI, REPO, Moord, host_problems, inspect

pytestmark = pytest.mark.integration

SKOPEO = "/usr/bin/skopeo"


@pytest.fixture(scope="module")
def daemon() -> Iterator[Moord]:
    problems = host_problems()
    if problems:
        pytest.fail("this host cannot run the integration tests:\n  " + "\n  ".join(problems),
                    pytrace=False)
    d = Moord(Path(tempfile.mkdtemp(prefix="moordar-", dir="/tmp")))
    try:
        d.start()
        d.import_busybox()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def busybox(daemon: Moord) -> Iterator[str]:
    """busybox's image ID; busybox is there again after the test, whatever it did."""
    image_id = str(inspect(daemon, "busybox")["Id"])
    yield image_id
    if daemon.docker("image", "inspect", "busybox", check=False).returncode != 0:
        daemon.import_busybox()


def moor(daemon: Moord, *args: str, stdin: Any = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "engine.cli", *args], env=daemon.env, cwd=REPO,
                            stdin=stdin, capture_output=True, text=True, timeout=60, check=False)
    return result


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which(SKOPEO):
        pytest.fail(f"{SKOPEO} is missing (scripts/test.sh installs it)", pytrace=False)
    result = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for info in tar:
            f = tar.extractfile(info) if info.isreg() else None
            out[info.name] = f.read() if f is not None else b""
        return out


def diff_ids(daemon: Moord, ref: str) -> list[str]:
    layers = inspect(daemon, ref)["RootFS"]
    assert isinstance(layers, dict)
    return list(layers["Layers"])


def test_save_rmi_load_run(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    daemon.docker("save", "busybox", "-o", str(archive))
    files = tar_members(archive)
    for name in ("manifest.json", "index.json", "oci-layout", "repositories"):
        assert name in files
    [item] = json.loads(files["manifest.json"])
    assert item["RepoTags"] == ["busybox:latest"]
    assert item["Config"] == f"blobs/sha256/{busybox[7:]}"
    layers = diff_ids(daemon, "busybox")
    assert ["sha256:" + hashlib.sha256(files[p]).hexdigest() for p in item["Layers"]] == layers

    again = tmp_path / "again.tar"
    daemon.docker("save", "-o", str(again), "busybox:latest")
    assert again.read_bytes() == archive.read_bytes()  # deterministic

    daemon.docker("rmi", "busybox")
    assert daemon.docker("images", "-q").stdout.strip() == ""
    out = daemon.docker("load", "-i", str(archive)).stdout
    assert out == "Loaded image: busybox:latest\n"
    assert inspect(daemon, "busybox")["Id"] == busybox
    assert daemon.docker("run", "--rm", "busybox", "echo", "loaded").stdout == "loaded\n"


def test_save_to_stdout_and_load_from_stdin(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    daemon.docker("tag", "busybox", "piped:1")
    try:
        archive = tmp_path / "piped.tar"
        with open(archive, "wb") as out:
            subprocess.run([DOCKER_CLI, "save", "piped:1"], env=daemon.env,
                           stdout=out, check=True, timeout=60)
        assert json.loads(tar_members(archive)["manifest.json"])[0]["RepoTags"] == ["piped:1"]
        daemon.docker("rmi", "piped:1")
        with open(archive, "rb") as f:
            result = subprocess.run([DOCKER_CLI, "load"], env=daemon.env, stdin=f,
                                    capture_output=True, text=True, check=True, timeout=60)
        assert result.stdout == "Loaded image: piped:1\n"
        assert inspect(daemon, "piped:1")["Id"] == busybox
    finally:
        daemon.docker("rmi", "piped:1", check=False)


def test_load_moves_a_tag(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar"
    daemon.docker("save", "busybox", "-o", str(archive))
    daemon.docker("tag", "busybox", "keep:1")
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    other = daemon.docker("import", str(rootfs), "busybox:latest").stdout.strip()
    try:
        out = daemon.docker("load", "-i", str(archive)).stdout
        assert out == (f"The image busybox:latest already exists, renaming the old one with ID "
                       f"{other} to empty string\nLoaded image: busybox:latest\n")
        assert inspect(daemon, "busybox")["Id"] == busybox
        assert inspect(daemon, other)["RepoTags"] == []
    finally:
        daemon.docker("rmi", other, check=False)
        daemon.docker("rmi", "keep:1", check=False)


def test_several_images_and_unknown_names(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    daemon.docker("tag", "busybox", "second:2")
    try:
        archive = tmp_path / "two.tar"
        daemon.docker("save", "-o", str(archive), "busybox", "second:2")
        [item] = json.loads(tar_members(archive)["manifest.json"])
        assert item["RepoTags"] == ["busybox:latest", "second:2"]
    finally:
        daemon.docker("rmi", "second:2")
    result = daemon.docker("save", "-o", str(tmp_path / "x.tar"), "nosuch:1", check=False)
    assert result.returncode == 1
    assert "No such image: nosuch:1" in result.stderr
    assert not (tmp_path / "x.tar").exists()


def test_hostile_archive_is_refused(daemon: Moord, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name, data in (("../escape", b"x"), ("manifest.json", b"[]")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = daemon.docker("load", "-i", str(evil), check=False)
    assert result.returncode == 1
    assert "invalid archive: member '../escape' climbs out of the archive" in result.stderr
    assert not Path(tmp_path.parent / "escape").exists()


def test_save_refuses_to_write_to_a_terminal(daemon: Moord) -> None:
    for argv in ([DOCKER_CLI, "save", "busybox"],
                 [sys.executable, "-m", "engine.cli", "save", "busybox"]):
        parent, child = pty.openpty()
        try:
            result = subprocess.run(argv, env=daemon.env, cwd=REPO, stdout=child,
                                    stderr=subprocess.PIPE, text=True, timeout=60, check=False)
        finally:
            os.close(child)
            os.close(parent)
        assert result.returncode == 1
        assert "cowardly refusing to save to a terminal. Use the -o flag or redirect" in \
            result.stderr


def test_docker_sdk_save_and_load(daemon: Moord, busybox: str) -> None:
    client = docker.DockerClient(base_url=daemon.host, timeout=60)
    try:
        data = b"".join(client.images.get("busybox").save())
        assert json.loads(_member(data, "manifest.json"))[0]["RepoTags"] is None  # saved by ID
        [image] = client.images.load(data)
        assert image.id == busybox
        named = b"".join(client.images.get("busybox").save(named=True))
        [image] = client.images.load(named)
        assert "busybox:latest" in image.tags
    finally:
        client.close()


def test_a_load_that_fails_is_a_200_with_an_error_line(daemon: Moord, tmp_path: Path) -> None:
    """As dockerd: docker-py raises ImageLoadError (it does only for the stream's error
    line), the CLIs print the error and exit 1, and no host path is in the message."""
    client = docker.DockerClient(base_url=daemon.host, timeout=60)
    try:
        with pytest.raises(docker.errors.ImageLoadError) as info:
            client.images.load(b"abc")
        assert "invalid archive: not a readable tar archive" in str(info.value)
        response = client.api._post(client.api._url("/images/load"), data=b"abc")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        [line] = [json.loads(x) for x in response.content.splitlines() if x.strip()]
        assert line["errorDetail"]["message"] == line["error"]
        assert "/tmp" not in line["error"]
    finally:
        client.close()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    result = daemon.docker("load", "-i", str(junk), check=False)
    assert result.returncode == 1
    assert "invalid archive: not a readable tar archive" in result.stderr
    result = moor(daemon, "load", "-i", str(junk))
    assert result.returncode == 1
    assert "invalid archive: not a readable tar archive" in result.stderr


def _member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_events_for_save_and_load(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    since = str(time.time() - 1)
    archive = tmp_path / "e.tar"
    daemon.docker("save", "-o", str(archive), "busybox")
    daemon.docker("load", "-i", str(archive))
    out = daemon.docker("events", "--since", since, "--until", str(time.time() + 1),
                        "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}}").stdout
    assert f"save {busybox}" in out.splitlines()
    assert f"load {busybox}" in out.splitlines()


def test_moor_save_and_load(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    archive = tmp_path / "m.tar"
    assert moor(daemon, "save", "-o", str(archive), "busybox").returncode == 0
    assert json.loads(tar_members(archive)["manifest.json"])[0]["RepoTags"] == ["busybox:latest"]
    result = moor(daemon, "load", "-i", str(archive))
    assert result.stdout == "Loaded image: busybox:latest\n"
    with open(archive, "rb") as f:
        result = moor(daemon, "image", "load", stdin=f)
    assert result.stdout == "Loaded image: busybox:latest\n"
    piped = subprocess.run(f"{sys.executable} -m engine.cli save busybox | "
                           f"{sys.executable} -m engine.cli load -q", shell=True, env=daemon.env,
                           cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert piped.stdout == "Loaded image: busybox:latest\n", piped.stderr
    bad = moor(daemon, "save", "-o", str(tmp_path / "no" / "dir.tar"), "busybox")
    assert bad.returncode == 1
    assert "invalid output path: directory" in bad.stderr


def test_skopeo_reads_the_archive(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    archive = tmp_path / "s.tar"
    daemon.docker("save", "-o", str(archive), "busybox")
    layers = diff_ids(daemon, "busybox")
    as_docker: dict[str, Any] = json.loads(skopeo("inspect", f"docker-archive:{archive}").stdout)
    assert as_docker["Layers"] == layers
    as_oci: dict[str, Any] = json.loads(skopeo("inspect", f"oci-archive:{archive}").stdout)
    assert as_oci["Layers"] == layers
    config = json.loads(skopeo("inspect", "--config", f"oci-archive:{archive}").stdout)
    assert config["rootfs"]["diff_ids"] == layers
    layout = tmp_path / "layout"
    skopeo("copy", f"docker-archive:{archive}", f"oci:{layout}:copied")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"


def test_oci_archive_from_skopeo_loads(daemon: Moord, busybox: str, tmp_path: Path) -> None:
    archive = tmp_path / "s.tar"
    daemon.docker("save", "-o", str(archive), "busybox")
    layout = tmp_path / "layout"
    skopeo("copy", f"docker-archive:{archive}", f"oci:{layout}:copied")  # gzips the layers
    named = tmp_path / "named.tar"
    skopeo("copy", f"oci:{layout}:copied", f"oci-archive:{named}:docker.io/library/ocibox:v1")
    unnamed = tmp_path / "unnamed.tar"
    skopeo("copy", f"oci:{layout}:copied", f"oci-archive:{unnamed}")
    try:
        assert daemon.docker("load", "-i", str(named)).stdout == "Loaded image: ocibox:v1\n"
        # skopeo rewrites the config as OCI (a new image ID), the layers stay the same
        oci_id = inspect(daemon, "ocibox:v1")["Id"]
        assert diff_ids(daemon, "ocibox:v1") == diff_ids(daemon, "busybox")
        out = daemon.docker("load", "-i", str(unnamed)).stdout
        assert out == f"Loaded image ID: {oci_id}\n"
        daemon.docker("rmi", "ocibox:v1")
        daemon.docker("rmi", "busybox")
        assert daemon.docker("load", "-i", str(named)).stdout == "Loaded image: ocibox:v1\n"
        assert daemon.docker("run", "--rm", "ocibox:v1", "echo", "oci").stdout == "oci\n"
        # the stored layer is now skopeo's gzip blob: saving decompresses it to the diff ID
        again = tmp_path / "again.tar"
        daemon.docker("save", "-o", str(again), "ocibox:v1")
        files = tar_members(again)
        [item] = json.loads(files["manifest.json"])
        assert ["sha256:" + hashlib.sha256(files[p]).hexdigest() for p in item["Layers"]] == \
            diff_ids(daemon, "ocibox:v1")
        inspected = json.loads(skopeo("inspect", f"docker-archive:{again}").stdout)
        assert inspected["Layers"] == diff_ids(daemon, "ocibox:v1")
    finally:
        daemon.docker("rmi", "ocibox:v1", check=False)
