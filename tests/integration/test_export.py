"""`docker export` and `moor export`: a container's filesystem as one tar, running or
stopped, without its volumes, its deletions applied, links and modes kept."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.test_moor_cli import moor
from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = pytest.mark.integration

SCRIPT = ("mkdir -p /data/sub && echo new > /data/sub/file && ln -s sub/file /data/link"
          " && ln /data/sub/file /data/hard && chmod 4755 /data/sub/file && rm /bin/vi"
          " && echo in-volume > /vol/v && echo ready")


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


def _check(members: dict[str, tarfile.TarInfo], data: bytes) -> None:
    assert "bin/busybox" in members
    assert "bin/vi" not in members  # deleted in the writable layer
    assert not any(name.startswith(("./", "/")) for name in members)
    assert members["data/sub/file"].mode == 0o4755
    assert members["data/link"].issym()
    assert members["data/link"].linkname == "sub/file"
    assert members["data/hard"].islnk() or members["data/sub/file"].islnk()
    assert "vol/v" not in members  # a volume is not the container's filesystem
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        extracted = tf.extractfile("data/sub/file")
        assert extracted is not None
        assert extracted.read() == b"new\n"


def test_export_running_and_stopped(moord: Moord, tmp_path: Path) -> None:
    name = f"exported-{secrets.token_hex(3)}"
    moord.docker("run", "-d", "--name", name, "-v", "/vol", "busybox", "sh", "-c",
                 SCRIPT + " && sleep 300")
    try:
        for _ in range(300):
            if "ready" in moord.docker("logs", name).stdout:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        running = subprocess.run([DOCKER_CLI, "export", name], env=moord.env,
                                 capture_output=True, check=True, timeout=120).stdout
        _check(_members(running), running)
        moord.docker("stop", "-t", "0", name)
        target = tmp_path / "out.tar"
        moord.docker("export", "-o", str(target), name)
        stopped = target.read_bytes()
        _check(_members(stopped), stopped)
        ours = tmp_path / "moor.tar"
        result = moor(moord, "export", "-o", str(ours), name)
        assert result.returncode == 0, result.stderr
        assert set(_members(ours.read_bytes())) == set(_members(stopped))
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_export_through_docker_py(moord: Moord, docker_client) -> None:  # type: ignore[no-untyped-def]
    container = docker_client.containers.create("busybox", ["true"])
    try:
        data = b"".join(container.export())
        members = _members(data)
        assert "bin/sh" in members
        assert members["etc"].isdir()
    finally:
        container.remove(force=True)
    import docker

    with pytest.raises(docker.errors.NotFound, match="No such container"):
        b"".join(docker_client.api.export("no-such-container"))


def test_moor_export_refuses_a_terminal(moord: Moord) -> None:
    import os
    import pty

    master, slave = pty.openpty()
    try:
        from tests.integration.test_moor_cli import moor_argv

        proc = subprocess.run([*moor_argv(), "export", "whatever"], env=moord.env,
                              stdout=slave, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode != 0
    assert b"cowardly refusing to save to a terminal" in proc.stderr
