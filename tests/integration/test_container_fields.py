"""Smaller container fields, through the docker CLI, docker-py and moor: `--device`,
`--device-cgroup-rule`, `Isolation`, and the runtime a container runs under."""

from __future__ import annotations

import secrets

import pytest

from tests.integration.test_moor_cli import moor
from tests.support.daemon import Moord, inspect

pytestmark = pytest.mark.integration


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def _opens(path: str, mode: str) -> str:
    """Shell: try to open `path` (`<` read, `>` write, `<>` both), say whether it could."""
    return f"( exec 3{mode}{path} ) 2>/dev/null && echo opened || echo denied"


@pytest.mark.cgroup_v2
def test_device_node_and_its_cgroup_permissions(moord: Moord) -> None:
    """`--device HOST:CONTAINER[:PERMS]` makes the node in the container, allowed in its
    device cgroup with those permissions only; inspect shows the mapping. /dev/net/tun
    (10:200) is one that Docker's default rules do not allow."""
    name = _name("dev")
    script = "; ".join(["stat -c '%t:%T %F' /dev/mynull", _opens("/dev/mynull", ">"),
                        _opens("/dev/mytun", "<"), _opens("/dev/mytun", ">")])
    out = moord.docker("run", "--name", name, "--device", "/dev/null:/dev/mynull",
                       "--device", "/dev/net/tun:/dev/mytun:r", "busybox", "sh", "-c",
                       script).stdout
    try:
        assert out.splitlines() == ["1:3 character special file", "opened", "opened", "denied"]
        devices = inspect(moord, name)["HostConfig"]["Devices"]  # type: ignore[index]
        assert devices == [
            {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
             "CgroupPermissions": "rwm"},
            {"PathOnHost": "/dev/net/tun", "PathInContainer": "/dev/mytun",
             "CgroupPermissions": "r"}]
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_a_missing_device_fails_the_start_in_dockerds_words(moord: Moord) -> None:
    name = _name("nodev")
    out = moord.docker("run", "--name", name, "--device", "/dev/no-such-device",
                       "busybox", "true", check=False)
    try:
        assert out.returncode != 0
        assert ('error gathering device information while adding custom device '
                '"/dev/no-such-device"') in out.stderr
    finally:
        moord.docker("rm", "-f", name, check=False)


@pytest.mark.cgroup_v2
def test_device_cgroup_rule_allows_a_node_the_container_makes(moord: Moord) -> None:
    """`--device-cgroup-rule 'c 10:200 rwm'` lets the container open a tun node it makes
    (mknod is allowed for every node, as in Docker); without the rule the open is denied."""
    script = "mknod /tmp/tun c 10 200; " + _opens("/tmp/tun", "<>")
    denied = moord.docker("run", "--rm", "busybox", "sh", "-c", script).stdout
    assert denied.strip() == "denied"
    name = _name("rule")
    made = moord.docker("run", "--name", name, "--device-cgroup-rule", "c 10:200 rwm",
                        "busybox", "sh", "-c", script).stdout
    try:
        assert made.strip() == "opened"
        rules = inspect(moord, name)["HostConfig"]["DeviceCgroupRules"]  # type: ignore[index]
        assert rules == ["c 10:200 rwm"]
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_bad_device_fields_are_refused_at_create(docker_client) -> None:  # type: ignore[no-untyped-def]
    import docker

    with pytest.raises(docker.errors.APIError, match="invalid device cgroup rule format") as bad:
        docker_client.api.create_container(
            "busybox", "true",
            host_config=docker_client.api.create_host_config(device_cgroup_rules=["x 1:2 r"]))
    assert bad.value.status_code == 400
    with pytest.raises(docker.errors.APIError, match="invalid isolation 'hyperv' on linux"):
        docker_client.api.create_container(
            "busybox", "true", host_config=docker_client.api.create_host_config(
                isolation="hyperv"))


def test_isolation_and_runtime_as_reported(moord: Moord, docker_client) -> None:  # type: ignore[no-untyped-def]
    """`Isolation` is what was asked ("default" is Linux's one); the runtime is the one
    the container runs under, and docker-py's `runtime=` (sent beside HostConfig) counts."""
    api = docker_client.api
    made = api.create_container("busybox", ["echo", "ran"], runtime="runc",
                                host_config=api.create_host_config(isolation="default"))
    try:
        info = api.inspect_container(made)
        assert info["HostConfig"]["Isolation"] == "default"
        assert info["HostConfig"]["Runtime"] == "runc"
        api.start(made)
        assert api.wait(made)["StatusCode"] == 0
        assert api.logs(made) == b"ran\n"
    finally:
        api.remove_container(made, force=True)
    name = _name("rt")
    moord.docker("create", "--name", name, "busybox", "true")
    try:
        assert inspect(moord, name)["HostConfig"]["Runtime"] == "crun"  # type: ignore[index]
        assert inspect(moord, name)["HostConfig"]["Isolation"] == ""  # type: ignore[index]
    finally:
        moord.docker("rm", "-f", name, check=False)


def test_moor_device_flags(moord: Moord) -> None:
    name = _name("moordev")
    script = "echo x > /dev/mynull && mknod /tmp/tun c 10 200; " + _opens("/tmp/tun", "<>")
    out = moor(moord, "run", "--name", name, "--device", "/dev/null:/dev/mynull:rw",
               "--device-cgroup-rule", "c 10:200 rwm", "busybox", "sh", "-c", script)
    try:
        assert out.stdout.strip() == "opened"
        host = inspect(moord, name)["HostConfig"]
        assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",  # type: ignore[index]
                                    "CgroupPermissions": "rw"}]
        assert host["DeviceCgroupRules"] == ["c 10:200 rwm"]  # type: ignore[index]
    finally:
        moord.docker("rm", "-f", name, check=False)
    bad = moor(moord, "create", "--device-cgroup-rule", "nonsense", "busybox")
    assert bad.returncode != 0
    assert "invalid device cgroup format 'nonsense'" in bad.stderr
