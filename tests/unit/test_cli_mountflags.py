"""`moor run/create` mount flags → the create body, as the docker CLI builds it."""

from __future__ import annotations

import re

import pytest

from engine.cli import running
from engine.cli.mountflags import mount_config, parse_mount, parse_tmpfs, split_volumes
from engine.cli.options import OptionError


def test_volume_flags_split_into_binds_and_anonymous_volumes() -> None:
    binds, anonymous = split_volumes(["/h:/c:ro", "data:/d", "/anon", "./rel:/r", "../up:/u"],
                                     cwd="/work/dir")
    assert binds == ["/h:/c:ro", "data:/d", "/work/dir/rel:/r", "/work/up:/u"]
    assert anonymous == ["/anon"]
    with pytest.raises(OptionError):
        split_volumes([""])


def test_mount_flag() -> None:
    assert parse_mount("type=bind,source=/h,target=/c,readonly,bind-propagation=rshared") == {
        "Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": True,
        "BindOptions": {"Propagation": "rshared"}}
    assert parse_mount("src=v1,dst=/d,volume-nocopy,volume-label=a=b,volume-driver=local,"
                       "volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m") == {
        "Type": "volume", "Source": "v1", "Target": "/d",
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"},
                          "DriverConfig": {"Name": "local",
                                           "Options": {"type": "tmpfs", "device": "tmpfs",
                                                       "o": "size=1m"}}}}
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1777,ro=false") == {
        "Type": "tmpfs", "Target": "/t", "ReadOnly": False,
        "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}}
    # CSV quoting, as docker's flag reader does it
    assert parse_mount('type=volume,"volume-opt=o=size=1m,uid=1000",target=/q')["VolumeOptions"] \
        == {"DriverConfig": {"Options": {"o": "size=1m,uid=1000"}}}
    for bad, message in (("type=bind,source=/h", "target is required"),
                         ("target=/x,bogus=1", "unexpected key 'bogus'"),
                         ("target=/x,source", "must be a key=value pair"),
                         ("type=volume,target=/x,bind-propagation=shared",
                          "cannot mix 'bind-*' options with mount type 'volume'"),
                         ("type=tmpfs,target=/x,tmpfs-mode=9", "tmpfs-mode"),
                         ("target=/x,readonly=maybe", "readonly")):
        with pytest.raises(OptionError, match=re.escape(message)):
            parse_mount(bad)


def test_tmpfs_flag() -> None:
    assert parse_tmpfs(["/run", "/tmp:rw,size=1g"]) == {"/run": "", "/tmp": "rw,size=1g"}


def test_create_body() -> None:
    config = mount_config(volumes=["/a", "v:/b"], mounts=["type=tmpfs,target=/t"],
                          tmpfs=["/run:size=1m"], volumes_from=["web:ro"], read_only=True,
                          volume_driver="local")
    assert config == {
        "Volumes": {"/a": {}},
        "HostConfig": {"Binds": ["v:/b"], "Mounts": [{"Type": "tmpfs", "Target": "/t"}],
                       "Tmpfs": {"/run": "size=1m"}, "VolumesFrom": ["web:ro"],
                       "ReadonlyRootfs": True, "VolumeDriver": "local"}}
    assert mount_config() == {"HostConfig": {}}


def test_run_flags_reach_the_request() -> None:
    ctx = running.create.make_context(
        "create", ["-v", "/h:/c", "-v", "/anon", "--mount", "type=volume,target=/m",
                   "--tmpfs", "/run", "--volumes-from", "other", "--read-only", "busybox"])
    opts = running.options_from(ctx.params, detach=True)
    body = opts.create_body()
    assert body["Volumes"] == {"/anon": {}}
    host = body["HostConfig"]
    assert host["Binds"] == ["/h:/c"]
    assert host["Mounts"] == [{"Type": "volume", "Target": "/m"}]
    assert host["Tmpfs"] == {"/run": ""}
    assert host["VolumesFrom"] == ["other"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "default"  # the other keys stay
