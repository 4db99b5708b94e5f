"""Container sizes as dockerd counts them: `ps -s` and `inspect -s` (`SizeRw`,
`SizeRootFs`), and the space `container prune` reports, through the docker CLI, docker-py
and moor."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.integration.test_moor_cli import moor
from tests.support.daemon import Moord, inspect

pytestmark = pytest.mark.integration

WRITTEN = 5000  # a file of 5000 bytes, plus a symlink to "/f" (2 bytes), plus a hard link
SCRIPT = "head -c 5000 /dev/zero > /f && ln -s /f /s && ln /f /h"


@pytest.fixture
def writer(moord: Moord):  # type: ignore[no-untyped-def]
    name = f"sized-{secrets.token_hex(3)}"
    moord.docker("run", "--name", name, "busybox", "sh", "-c", SCRIPT)
    yield name
    moord.docker("rm", "-f", name, check=False)


def test_inspect_and_ps_with_size(moord: Moord, writer: str) -> None:
    image_size = inspect(moord, "busybox")["Size"]
    assert isinstance(image_size, int)
    plain = inspect(moord, writer)
    assert "SizeRw" not in plain
    assert "SizeRootFs" not in plain
    sized = json.loads(moord.docker("inspect", "-s", writer).stdout)[0]
    assert sized["SizeRw"] == WRITTEN + 2
    assert sized["SizeRootFs"] == WRITTEN + 2 + image_size
    line = moord.docker("ps", "-a", "-s", "--filter", f"name={writer}",
                        "--format", "{{.Size}}").stdout.strip()
    assert line.startswith("5")
    assert "virtual" in line
    ours = moor(moord, "ps", "-a", "-s", "--filter", f"name={writer}",
                "--format", "{{.Size}}").stdout.strip()
    assert ours == line
    moor_inspect = moor(moord, "inspect", "-s", "-f", "{{.SizeRw}}", writer).stdout.strip()
    assert moor_inspect == str(WRITTEN + 2)


def test_list_with_size_through_docker_py(moord: Moord, writer: str,
                                          docker_client) -> None:  # type: ignore[no-untyped-def]
    listed = docker_client.api.containers(all=True, size=True, filters={"name": writer})
    assert listed[0]["SizeRw"] == WRITTEN + 2
    assert listed[0]["SizeRootFs"] > WRITTEN
    untouched = docker_client.containers.create("busybox", "true")
    try:
        (entry,) = docker_client.api.containers(all=True, size=True,
                                                filters={"id": untouched.id})
        assert "SizeRw" not in entry  # zero is left out, as dockerd's omitempty does
        assert entry["SizeRootFs"] > 0
    finally:
        untouched.remove(force=True)


def test_prune_reports_the_space_reclaimed(moord: Moord, docker_client) -> None:  # type: ignore[no-untyped-def]
    """Every stopped container goes (the test's daemon is shared: only the sum of what
    this test wrote is known to be at least in it)."""
    docker_client.containers.run("busybox", ["sh", "-c", SCRIPT])
    keeper = docker_client.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        result = docker_client.containers.prune()
        assert result["SpaceReclaimed"] >= WRITTEN + 2
        assert keeper.id not in (result["ContainersDeleted"] or [])
    finally:
        keeper.remove(force=True)
