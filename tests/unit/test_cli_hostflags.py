"""moor's isolation, logging and namespace flags, written as the docker CLI writes them."""

from __future__ import annotations

from typing import Any

import pytest

from engine.cli.hostflags import HostFlags, exposed_ports
from engine.cli.options import OptionError


def test_written_where_docker_writes_them() -> None:
    flags = HostFlags.from_params({
        "privileged": True, "cap_add": ("NET_ADMIN",), "cap_drop": ("ALL",),
        "security_opt": ("no-new-privileges",), "log_driver": "json-file",
        "log_opts": ("max-size=1m", "max-file=2"), "sysctls": ("net.ipv4.ip_forward=1",),
        "group_add": ("123",), "ipc": "host", "pid": "host", "uts": "host",
        "cgroupns": "private", "oom_score_adj": 500, "runtime": "runc",
        "annotations": ("a=b",), "expose": ("80", "53/udp", "9000-9001")})
    body: dict[str, Any] = {"HostConfig": {}, "ExposedPorts": {"22/tcp": {}}}
    flags.apply(body)
    assert body["ExposedPorts"] == {"22/tcp": {}, "80/tcp": {}, "53/udp": {}, "9000/tcp": {},
                                    "9001/tcp": {}}
    assert body["HostConfig"] == {
        "Privileged": True, "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"], "Sysctls": {"net.ipv4.ip_forward": "1"},
        "GroupAdd": ["123"], "IpcMode": "host", "PidMode": "host", "UTSMode": "host",
        "CgroupnsMode": "private", "OomScoreAdj": 500, "Runtime": "runc",
        "Annotations": {"a": "b"},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}}


def test_nothing_given_writes_nothing() -> None:
    body: dict[str, Any] = {"HostConfig": {}}
    HostFlags.from_params({}).apply(body)
    assert body == {"HostConfig": {}}


@pytest.mark.parametrize(("params", "message"), [
    ({"oom_score_adj": 1001}, r"range for oom score adj is \[-1000, 1000\]"),
    ({"sysctls": ("novalue",)}, "invalid key value pair format: novalue"),
    ({"log_driver": "none", "log_opts": ("max-size=1m",)}, "invalid logging opts for driver none"),
    ({"expose": ("http",)}, "invalid range format for --expose: http"),
    ({"expose": ("90-80",)}, "invalid range format for --expose: 90-80"),
])
def test_refusals(params: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        HostFlags.from_params(params)


def test_expose_range() -> None:
    assert exposed_ports("7000-7002/udp") == ["7000/udp", "7001/udp", "7002/udp"]


def test_device_flags_as_docker_parses_them() -> None:
    from engine.cli.hostflags import device_mapping

    assert device_mapping("/dev/sda") == {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda",
                                          "CgroupPermissions": "rwm"}
    assert device_mapping("/dev/sda:r")["CgroupPermissions"] == "r"
    assert device_mapping("/dev/sda:/dev/xvda")["PathInContainer"] == "/dev/xvda"
    assert device_mapping("/dev/sda:/dev/xvda:rw")["CgroupPermissions"] == "rw"
    for bad in ("/dev/sda:/dev/xvda:rwx", "/dev/sda:xvda", "a:b:c:d"):
        with pytest.raises(OptionError):
            device_mapping(bad)
    flags = HostFlags.from_params({"devices": ("/dev/null:/dev/n",),
                                   "device_cgroup_rules": ("c 1:3 r",)})
    body: dict[str, Any] = {"HostConfig": {}}
    flags.apply(body)
    assert body["HostConfig"]["DeviceCgroupRules"] == ["c 1:3 r"]
    assert body["HostConfig"]["Devices"][0]["PathInContainer"] == "/dev/n"
    with pytest.raises(OptionError, match="invalid device cgroup format 'c 1:3'"):
        HostFlags.from_params({"device_cgroup_rules": ("c 1:3",)})
