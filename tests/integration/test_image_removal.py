"""`docker rmi` and `docker image prune` of built images: the intermediate images of a
classic build (each step's image, the next one's parent) leave with the image they made,
as with dockerd, and an image other images are built on cannot be removed."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import DOCKER_CLI, Moord

pytestmark = pytest.mark.integration


def _classic_build(moord: Moord, tmp_path: Path, tag: str) -> list[str]:
    """Build a three-step image with the classic builder; the IDs of its steps' images."""
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nENV STEP={secrets.token_hex(4)}\nRUN echo hi > /built\nLABEL made=by-test\n")
    result = subprocess.run([DOCKER_CLI, "build", "-t", tag, str(tmp_path)],
                            env={**moord.env, "DOCKER_BUILDKIT": "0"}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [line.split()[-1] for line in result.stdout.splitlines() if line.startswith(" ---> ")
            and not line.startswith(" ---> Running") and "Using cache" not in line]


def _all_images(moord: Moord) -> set[str]:
    out = moord.docker("images", "-a", "--no-trunc", "--format", "{{.ID}}").stdout
    return {line.removeprefix("sha256:")[:12] for line in out.split()}


def test_rmi_removes_the_untagged_parent_chain(moord: Moord, tmp_path: Path) -> None:
    tag = f"chain-{secrets.token_hex(3)}:1"
    steps = _classic_build(moord, tmp_path, tag)
    busybox = moord.docker("images", "-q", "busybox:latest").stdout.strip()
    assert steps[0] == busybox  # FROM
    built = steps[1:]
    assert len(built) == 3
    assert set(built) <= _all_images(moord)
    parent = json.loads(moord.docker("inspect", tag).stdout)[0]["Parent"]
    assert parent.removeprefix("sha256:")[:12] == built[1]

    # the base and the intermediate images have children: refused, even forced
    for image in (busybox, built[0]):
        refused = moord.docker("rmi", "-f", image, check=False)
        assert refused.returncode == 1
        assert (f"conflict: unable to delete {image} (cannot be forced) - image has dependent "
                "child images") in refused.stderr

    out = moord.docker("rmi", tag).stdout.splitlines()
    assert out[0] == f"Untagged: {tag}"
    deleted = [line.removeprefix("Deleted: sha256:")[:12] for line in out[1:]]
    # the image, then its parents, top down (each followed by the layers only it had)
    assert [d for d in deleted if d in built] == list(reversed(built))
    assert not set(built) & _all_images(moord)
    assert busybox in _all_images(moord)  # tagged: it stays


def test_noprune_keeps_the_parents(moord: Moord, tmp_path: Path) -> None:
    tag = f"noprune-{secrets.token_hex(3)}:1"
    built = _classic_build(moord, tmp_path, tag)[1:]
    out = moord.docker("rmi", "--no-prune", tag).stdout.splitlines()
    assert out == [f"Untagged: {tag}", f"Deleted: sha256:{_full_id(out, built[-1])}"]
    left = _all_images(moord)
    assert set(built[:2]) <= left
    # the step below is now a dangling head: prune takes it and the chain under it
    moord.docker("image", "prune", "-f")
    assert not set(built[:2]) & _all_images(moord)


def test_a_parent_used_by_a_container_stays(moord: Moord, tmp_path: Path) -> None:
    tag = f"used-{secrets.token_hex(3)}:1"
    built = _classic_build(moord, tmp_path, tag)[1:]
    name = f"user-{secrets.token_hex(3)}"
    moord.docker("create", "--name", name, built[0])
    try:
        moord.docker("rmi", tag)
        left = _all_images(moord)
        assert built[0] in left
        assert not {built[1], built[2]} & left
    finally:
        moord.docker("rm", name)
    moord.docker("rmi", built[0])
    assert built[0] not in _all_images(moord)


def test_docker_sdk_remove_image_with_noprune(moord: Moord, tmp_path: Path) -> None:
    import docker

    tag = f"sdk-{secrets.token_hex(3)}:1"
    built = _classic_build(moord, tmp_path, tag)[1:]
    client = docker.DockerClient(base_url=moord.host, timeout=60)
    try:
        client.api.remove_image(tag, noprune=True)
        assert set(built[:2]) <= _all_images(moord)
        client.api.remove_image(built[1])
        assert not set(built[:2]) & _all_images(moord)
    finally:
        client.close()


def _full_id(lines: list[str], short: str) -> str:
    for line in lines:
        if line.startswith(f"Deleted: sha256:{short}"):
            return line.removeprefix("Deleted: sha256:")
    raise AssertionError(f"{short} not deleted: {lines}")
